"""The forges' REST APIs for the trust sync: who has which SSH keys on GitLab (v4) or Gitea/Forgejo (v1).

The only gatekeeper module that imports ``requests`` (about 120 ms, reference style.md §3). It is imported by
:mod:`gatekeeper.hosting.trustsync` alone, which only the ``trust`` verb imports: never on the push path
(``tests/test_import_graph.py``).

Endpoints and fields: reference git-and-platforms.md §9.4 (Gitea) and §10.4 (GitLab). Every request has
``timeout=(connect, read)``; connection errors, timeouts, 5xx and 429 are retried a bounded number of times with
exponential backoff (other 4xx never are); one total deadline bounds the whole conversation; answers are size-capped;
redirects are refused, because ``requests`` keeps custom headers such as GitLab's ``PRIVATE-TOKEN`` across a redirect
to another host. The token is sent only in a header and never appears in a message.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests

from gatekeeper.errors import GatekeeperError

__all__ = [
    "AccountKeys",
    "Forge",
    "ForgeError",
    "ForgeKey",
    "GitLab",
    "Gitea",
    "HttpSettings",
    "make_forge",
    "read_token",
]

TOKEN_ENV = "GATEKEEPER_FORGE_TOKEN"
MAX_TOKEN_BYTES = 4096
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 30.0
GITLAB_PER_PAGE = 100  # GitLab's maximum
GITEA_LIMIT = 50  # Gitea's default [api] MAX_RESPONSE_ITEMS; a lower server cap still pages correctly via X-Total-Count
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class ForgeError(GatekeeperError):
    """The forge's API failed, timed out, refused the token or answered something unexpected; or no usable token."""

    default_hint = "nothing was changed; fix the cause and run the sync again"


# --------------------------------------------------------------------------------------------------------------------
# what the forge says


@dataclass(frozen=True)
class ForgeKey:
    """One key as the forge lists it, before any check. ``usage`` is GitLab's ``usage_type`` or Gitea's ``key_type``."""

    key_id: str
    text: str
    title: str
    usage: str | None
    expires_at: str | None = None


@dataclass(frozen=True)
class AccountKeys:
    """The keys of one platform account; ``problem`` says why none can count (not found, blocked)."""

    account: str
    keys: tuple[ForgeKey, ...] = ()
    problem: str | None = None


class Forge(Protocol):
    kind: str
    url: str

    def account_keys(self, account: str) -> AccountKeys: ...


# --------------------------------------------------------------------------------------------------------------------
# HTTP: timeouts, retries, a total deadline, bounded answers


@dataclass(frozen=True)
class HttpSettings:
    """Network limits. ``deadline`` bounds the whole sync; ``retries`` is the number of extra attempts per request."""

    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    retries: int = 3
    backoff: float = 1.0
    deadline: float = 300.0
    max_pages: int = 100
    max_response_bytes: int = 8 << 20


class _Http:
    """GET JSON from one API root with the limits of :class:`HttpSettings`. Never follows redirects."""

    def __init__(self, api_root: str, headers: Mapping[str, str], settings: HttpSettings, *,
                 ca_bundle: str | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api_root = api_root
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._deadline_at = clock() + settings.deadline
        self._session = requests.Session()
        # No ~/.netrc credentials added behind our back; the CA bundle (an internal forge's private CA) and proxies
        # (honouring no_proxy) are still taken from the environment, explicitly.
        self._session.trust_env = False
        self._session.verify = ca_bundle or True
        self._session.proxies.update(requests.utils.get_environ_proxies(api_root))
        self._session.headers.update({"Accept": "application/json", "User-Agent": "gatekeeper-trust-sync"})
        self._session.headers.update(headers)

    def close(self) -> None:
        self._session.close()

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> tuple[Any, Mapping[str, str]] | None:
        """JSON body and headers of ``GET path``, or None on 404.

        Raises:
            ForgeError: 401/403 (token), other 4xx, redirects, a body that is not JSON or too big, or a retryable
                failure (connection, timeout, 5xx, 429) that persisted through every retry or past the deadline.
        """
        url = self.api_root + path
        shown = url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        attempt = 0
        while True:
            remaining = self._deadline_at - self._clock()
            if remaining <= 0:
                raise ForgeError(f"GET {shown}: the sync's deadline of {self.settings.deadline:g} s passed",
                                 hint="the forge is too slow or unreachable; the existing allowed_signers file was "
                                      "left unchanged (raise --deadline if the forge is just slow)")
            timeout = (min(self.settings.connect_timeout, remaining), min(self.settings.read_timeout, remaining))
            retry_after = 0.0
            try:
                response = self._session.get(url, params=params, timeout=timeout, allow_redirects=False, stream=True)
                try:
                    status = response.status_code
                    if status in RETRY_STATUSES:
                        problem = f"HTTP {status}"
                        retry_after = _retry_after(response.headers.get("Retry-After"))
                    else:
                        return self._answer(response, shown)
                finally:
                    response.close()
            except requests.ConnectTimeout:
                problem = f"no connection within {timeout[0]:g} s"
            except requests.Timeout:
                problem = f"no answer within {timeout[1]:g} s"
            except requests.ConnectionError as exc:
                problem = f"connection failed ({_short(exc)})"
            except requests.RequestException as exc:
                raise ForgeError(f"GET {shown}: {_short(exc)}") from None
            attempt += 1
            if attempt > self.settings.retries:
                raise ForgeError(f"GET {shown}: {problem} (gave up after {attempt} attempts)",
                                 hint="the forge is failing or unreachable; the existing allowed_signers file was "
                                      "left unchanged")
            delay = max(min(self.settings.backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS), retry_after)
            delay *= 1 + random.random() * 0.1  # jitter: many servers' timers must not hit the forge in lockstep
            if self._clock() + delay >= self._deadline_at:
                raise ForgeError(f"GET {shown}: {problem}; no time left for a retry within the sync's deadline of "
                                 f"{self.settings.deadline:g} s",
                                 hint="the existing allowed_signers file was left unchanged")
            self._sleep(delay)

    def _answer(self, response: requests.Response, shown: str) -> tuple[Any, Mapping[str, str]] | None:
        status = response.status_code
        if 300 <= status < 400:
            # requests keeps custom headers such as PRIVATE-TOKEN across a redirect to another host: never follow.
            raise ForgeError(f"GET {shown}: HTTP {status} redirect to {response.headers.get('Location', '?')!r}",
                             hint="give the forge's final base URL (https, no redirects)")
        if status in (401, 403):
            raise ForgeError(f"GET {shown}: HTTP {status}: the forge refused the token",
                             hint="check the token (GitLab: read_api or read_user scope; Gitea: read:user) and its "
                                  "expiry")
        if status == 404:
            return None
        if status != 200:
            raise ForgeError(f"GET {shown}: unexpected HTTP {status}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > self.settings.max_response_bytes:
                raise ForgeError(f"GET {shown}: answer larger than {self.settings.max_response_bytes} bytes")
            if self._clock() > self._deadline_at:
                raise ForgeError(f"GET {shown}: the sync's deadline of {self.settings.deadline:g} s passed while "
                                 "reading the answer")
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks)), response.headers
        except ValueError:
            raise ForgeError(f"GET {shown}: the answer is not JSON",
                             hint="check the base URL: it must be the forge's web root") from None


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 0), 0.0), MAX_BACKOFF_SECONDS)
    except ValueError:
        return 0.0


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _int_header(headers: Mapping[str, str], name: str, shown: str) -> int | None:
    value = headers.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise ForgeError(f"{shown}: header {name}: {value[:40]!r} is not a number")
    return int(value)


def _list_answer(data: Any, shown: str) -> list[Any]:
    if not isinstance(data, list):
        raise ForgeError(f"GET {shown}: expected a JSON list, got {type(data).__name__}",
                         hint="check the base URL and the forge type (--gitlab or --gitea)")
    return data


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name)
    return value if isinstance(value, str) else ""


def _key_id(item: Mapping[str, Any]) -> str:
    value = item.get("id")
    return str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else "?"


# --------------------------------------------------------------------------------------------------------------------
# the forges


def _api_root(url: str, suffix: str, *, allow_http: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ForgeError(f"forge URL {url!r} is not an http(s) URL",
                             hint="e.g. --gitlab https://gitlab.example.com")
    if parts.username or parts.password or parts.query or parts.fragment:
        # Not echoed: it may hold a password.
        raise ForgeError("the forge URL must be a plain base URL (no credentials, query or fragment)",
                             hint="give the token with --token-file or $" + TOKEN_ENV)
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS and not allow_http:
        raise ForgeError(f"forge URL {url!r} is plain http: the token would cross the network unencrypted",
                             hint="use https")
    root = url.rstrip("/")
    if root.endswith(suffix):
        root = root[: -len(suffix)]
    return root + suffix


class GitLab:
    """GitLab REST API v4 (reference §10.4); token in ``PRIVATE-TOKEN``."""

    kind = "gitlab"

    def __init__(self, url: str, token: str, settings: HttpSettings = HttpSettings(), *, allow_http: bool = False,
                 ca_bundle: str | None = None) -> None:
        self.url = url
        self._http = _Http(_api_root(url, "/api/v4", allow_http=allow_http), {"PRIVATE-TOKEN": token}, settings,
                           ca_bundle=ca_bundle)

    def account_keys(self, account: str) -> AccountKeys:
        found = self._http.get("/users", {"username": account})
        users = _list_answer(found[0] if found else [], f"/users?username={account}")
        # The lookup ignores case; take the one user whose name is this account.
        matches = [u for u in users if isinstance(u, dict) and _text(u, "username").casefold() == account.casefold()]
        if not matches:
            return AccountKeys(account, problem="no such user")
        if len(matches) > 1:
            raise ForgeError(f"GitLab returned {len(matches)} users named {account!r}")
        user = matches[0]
        uid = user.get("id")
        if not isinstance(uid, int) or isinstance(uid, bool):
            raise ForgeError(f"GitLab user {account!r} has no numeric id")
        state = _text(user, "state")
        if state != "active":
            return AccountKeys(account, problem=f"user state is {state or 'unknown'!r}, not 'active'")
        keys = []
        for item in self._pages(f"/users/{uid}/keys", account):
            keys.append(ForgeKey(_key_id(item), _text(item, "key"), _text(item, "title"),
                                 item.get("usage_type") if isinstance(item.get("usage_type"), str) else None,
                                 item.get("expires_at") if isinstance(item.get("expires_at"), str) else None))
        return AccountKeys(account, tuple(keys))

    def _pages(self, path: str, account: str) -> Iterator[dict[str, Any]]:
        settings = self._http.settings
        page = 1
        for _ in range(settings.max_pages):
            found = self._http.get(path, {"page": page, "per_page": GITLAB_PER_PAGE})
            if found is None:
                raise ForgeError(f"GET {path}: HTTP 404 for GitLab user {account!r} whose id was just looked up")
            data, headers = found
            shown = f"GET {path}?page={page}"
            items = _list_answer(data, shown)
            yield from (item for item in items if isinstance(item, dict))
            next_page = _int_header(headers, "X-Next-Page", shown)
            total_pages = _int_header(headers, "X-Total-Pages", shown)
            if next_page is not None:
                if next_page <= page:
                    raise ForgeError(f"{shown}: X-Next-Page {next_page} does not advance")
                page = next_page
            elif "X-Next-Page" in headers:  # present and empty: the last page
                return
            elif total_pages is not None:  # GitLab leaves out X-Next-Page only in odd setups; trust the total
                if page >= total_pages:
                    return
                page += 1
            elif len(items) >= GITLAB_PER_PAGE:  # no pagination headers at all (very large sets): go on until short
                page += 1
            else:
                return
        raise ForgeError(f"GET {path}: more than {settings.max_pages} pages of keys for {account!r}")


class Gitea:
    """Gitea (and Forgejo) REST API v1 (reference §9.4); token in ``Authorization: token ...``."""

    kind = "gitea"

    def __init__(self, url: str, token: str, settings: HttpSettings = HttpSettings(), *, allow_http: bool = False,
                 ca_bundle: str | None = None) -> None:
        self.url = url
        self._http = _Http(_api_root(url, "/api/v1", allow_http=allow_http), {"Authorization": f"token {token}"},
                           settings, ca_bundle=ca_bundle)

    def account_keys(self, account: str) -> AccountKeys:
        name = quote(account, safe="")
        found = self._http.get(f"/users/{name}")
        if found is None:
            return AccountKeys(account, problem="no such user")
        user = found[0]
        if not isinstance(user, dict):
            raise ForgeError(f"GET /users/{name}: expected a JSON object")
        # Shown to admin tokens only (otherwise false): a user who may not log in must not keep approving.
        if user.get("prohibit_login") is True:
            return AccountKeys(account, problem="the user may not log in (prohibit_login)")
        keys = []
        for item in self._pages(f"/users/{name}/keys", account):
            owner = item.get("user")
            if isinstance(owner, dict) and _text(owner, "login").casefold() != account.casefold():
                # Defence in depth: a key listed under another user's name must never become this person's key.
                raise ForgeError(f"GET /users/{name}/keys: key {_key_id(item)} belongs to "
                                 f"{_text(owner, 'login')!r}, not {account!r}")
            keys.append(ForgeKey(_key_id(item), _text(item, "key"), _text(item, "title"),
                                 item.get("key_type") if isinstance(item.get("key_type"), str) else None))
        return AccountKeys(account, tuple(keys))

    def _pages(self, path: str, account: str) -> Iterator[dict[str, Any]]:
        settings = self._http.settings
        seen = 0
        for page in range(1, settings.max_pages + 1):
            found = self._http.get(path, {"page": page, "limit": GITEA_LIMIT})
            if found is None:
                raise ForgeError(f"GET {path}: HTTP 404 for Gitea user {account!r} that was just found")
            data, headers = found
            shown = f"GET {path}?page={page}"
            items = _list_answer(data, shown)
            total = _int_header(headers, "X-Total-Count", shown)
            yield from (item for item in items if isinstance(item, dict))
            seen += len(items)
            # Without X-Total-Count, go on until an empty page: the server may cap `limit` below what we asked.
            if not items or (total is not None and seen >= total):
                return
        raise ForgeError(f"GET {path}: more than {settings.max_pages} pages of keys for {account!r}")


def make_forge(kind: str, url: str, token: str, settings: HttpSettings = HttpSettings(), *,
               allow_http: bool = False, ca_bundle: str | None = None) -> GitLab | Gitea:
    """A client for ``kind`` ("gitlab" or "gitea") at the base ``url``. Plain http only to loopback or if allowed."""
    if kind == "gitlab":
        return GitLab(url, token, settings, allow_http=allow_http, ca_bundle=ca_bundle)
    if kind == "gitea":
        return Gitea(url, token, settings, allow_http=allow_http, ca_bundle=ca_bundle)
    raise ForgeError(f"unknown forge {kind!r}", hint="use --gitlab URL or --gitea URL")


def read_token(token_file: Path | None, env: Mapping[str, str]) -> str:
    """The API token from ``token_file`` or ``$GATEKEEPER_FORGE_TOKEN``; never from the command line.

    Raises:
        TrustSyncError: no token, an unreadable or oversized file, or a token with blanks or control characters.
    """
    if token_file is not None:
        try:
            with open(token_file, "rb") as f:
                raw = f.read(MAX_TOKEN_BYTES + 1)
        except OSError as exc:
            raise ForgeError(f"cannot read the token file {token_file}: {exc.strerror or exc}",
                                 hint="the file must be readable by the user the sync runs as") from None
        if len(raw) > MAX_TOKEN_BYTES:
            raise ForgeError(f"the token file {token_file} is larger than {MAX_TOKEN_BYTES} bytes")
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            token = "\0"
        where = f"the token file {token_file}"
    else:
        token = env.get(TOKEN_ENV, "").strip()
        where = f"${TOKEN_ENV}"
        if not token:
            raise ForgeError("no API token", hint=f"put it in a file readable only by the sync's user and pass "
                                                      f"--token-file FILE, or set ${TOKEN_ENV}")
    if not token:
        raise ForgeError(f"{where} is empty")
    if any(not (33 <= ord(ch) <= 126) for ch in token):
        # Never echo the token, not even a broken one.
        raise ForgeError(f"{where} holds more than one printable word",
                             hint="the file must contain only the token (one line)")
    return token
