"""Build the trust store (``allowed_signers``) from the SSH signing keys people registered on GitLab or Gitea.

``gatekeeper trust sync`` runs from cron or a systemd timer, never on the push path. This is the only gatekeeper
module that imports ``requests`` (about 120 ms, reference style.md §3), and only the ``trust`` verb imports it;
``tests/test_import_graph.py`` keeps it that way.

Who: the people of the policy. ``people.<name>.accounts`` (default: the name) are their platform user names; each
written line names the *person* (the gate's identity), never the account: ``name namespaces="<ns>" TYPE BASE64``.

Which keys (reference git-and-platforms.md §9.4, §10.4):

* GitLab ``GET /api/v4/users?username=`` (id and ``state``), then ``GET /api/v4/users/:id/keys`` (pages ``page``,
  ``per_page``, ``X-Next-Page``/``X-Total-Pages``); keys with ``usage_type`` ``signing`` or ``auth_and_signing``;
  ``expires_at`` becomes ``valid-before="YYYYMMDDHHMMSSZ"`` (with ``Z``: without it ssh-keygen reads local time,
  signatures-and-audit-log.md §A4 gotcha 2); already expired keys are skipped. Only ``state: active`` users count: a
  blocked user (somebody who left) keeps their keys on GitLab, but must not keep approving.
* Gitea ``GET /api/v1/users/{username}`` (``prohibit_login``, visible to an admin token), then
  ``GET /api/v1/users/{username}/keys`` (pages ``page``, ``limit``, ``X-Total-Count``); ``key_type: user`` only (not
  deploy or principal keys). Gitea has no signing-vs-auth flag: every user key counts.

Fail closed: any HTTP or shape problem aborts the whole sync and leaves the existing file untouched; a file with no key,
or one key listed for two people (one key must be one person, or two-person approval fails), is never written; a sync
that would take every key from more than ``max_drop_percent`` of the people who had one refuses unless forced (an API
that suddenly answers "no keys" would otherwise silently disable every reviewer). Every request has
``timeout=(connect, read)``, bounded retries with exponential backoff on connection errors, timeouts, 5xx and 429 (never
other 4xx), and one total deadline; redirects are refused (``requests`` would forward GitLab's ``PRIVATE-TOKEN`` header
to another host). The file is replaced atomically (temp + fsync + rename + fsync of the directory, mode 0644) and the
previous one is kept as ``<file>.prev``. The token is never logged or shown.
"""

from __future__ import annotations

import base64
import difflib
import errno
import fcntl
import json
import os
import random
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests

from gatekeeper.errors import GatekeeperError

__all__ = [
    "ForgeError",
    "ForgeKey",
    "AccountKeys",
    "GitLab",
    "Gitea",
    "HttpSettings",
    "SyncPlan",
    "TrustSyncError",
    "WriteResult",
    "make_forge",
    "plan_trust_store",
    "read_token",
    "refuse_large_drop",
    "write_trust_store",
]

TOKEN_ENV = "GATEKEEPER_FORGE_TOKEN"
MAX_TOKEN_BYTES = 4096
MAX_TITLE_CHARS = 60
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 30.0
GITLAB_PER_PAGE = 100  # GitLab's maximum
GITEA_LIMIT = 50  # Gitea's default [api] MAX_RESPONSE_ITEMS; a lower server cap still pages correctly via X-Total-Count
SIGNING_USAGES = ("signing", "auth_and_signing")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class TrustSyncError(GatekeeperError):
    """The trust store could not be built or written; the existing file is unchanged."""

    default_hint = "the existing allowed_signers file was left unchanged; fix the cause and run the sync again"


class ForgeError(TrustSyncError):
    """The forge's API failed, timed out, refused the token or answered something unexpected."""


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
        raise TrustSyncError(f"forge URL {url!r} is not an http(s) URL",
                             hint="e.g. --gitlab https://gitlab.example.com")
    if parts.username or parts.password or parts.query or parts.fragment:
        # Not echoed: it may hold a password.
        raise TrustSyncError("the forge URL must be a plain base URL (no credentials, query or fragment)",
                             hint="give the token with --token-file or $" + TOKEN_ENV)
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS and not allow_http:
        raise TrustSyncError(f"forge URL {url!r} is plain http: the token would cross the network unencrypted",
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
    raise TrustSyncError(f"unknown forge {kind!r}", hint="use --gitlab URL or --gitea URL")


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
            raise TrustSyncError(f"cannot read the token file {token_file}: {exc.strerror or exc}",
                                 hint="the file must be readable by the user the sync runs as") from None
        if len(raw) > MAX_TOKEN_BYTES:
            raise TrustSyncError(f"the token file {token_file} is larger than {MAX_TOKEN_BYTES} bytes")
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            token = "\0"
        where = f"the token file {token_file}"
    else:
        token = env.get(TOKEN_ENV, "").strip()
        where = f"${TOKEN_ENV}"
        if not token:
            raise TrustSyncError("no API token", hint=f"put it in a file readable only by the sync's user and pass "
                                                      f"--token-file FILE, or set ${TOKEN_ENV}")
    if not token:
        raise TrustSyncError(f"{where} is empty")
    if any(not (33 <= ord(ch) <= 126) for ch in token):
        # Never echo the token, not even a broken one.
        raise TrustSyncError(f"{where} holds more than one printable word",
                             hint="the file must contain only the token (one line)")
    return token


# --------------------------------------------------------------------------------------------------------------------
# the plan: which line for which key, and why others were left out


@dataclass(frozen=True)
class TrustedKey:
    person: str
    account: str
    key_id: str
    key_type: str
    key_b64: str
    fingerprint: str
    blob: bytes = field(repr=False)
    title: str
    valid_before: datetime | None = None


@dataclass(frozen=True)
class SkippedKey:
    person: str
    account: str
    key_id: str
    title: str
    reason: str


@dataclass(frozen=True)
class Conflict:
    """One key registered for two or more people: it must not be trusted for any of them."""

    fingerprint: str
    owners: tuple[tuple[str, str], ...]  # (person, account)


@dataclass(frozen=True)
class SyncPlan:
    forge: str
    namespace: str
    keys: tuple[TrustedKey, ...]
    skipped: tuple[SkippedKey, ...]
    missing: Mapping[str, tuple[str, ...]]  # person -> why they have no key (one reason per account)
    account_problems: tuple[tuple[str, str, str], ...]  # (person, account, problem)
    conflicts: tuple[Conflict, ...]
    people: tuple[str, ...]

    def keys_of(self, person: str) -> tuple[TrustedKey, ...]:
        return tuple(k for k in self.keys if k.person == person)

    def render(self) -> bytes:
        """The ``allowed_signers`` file: stable order and no timestamp, so an unchanged forge gives identical bytes."""
        lines = [
            f"# gatekeeper allowed_signers, generated by `gatekeeper trust sync` from {self.forge}",
            "# Do not edit: the next sync replaces this file. Principals are the policy's people.",
        ]
        for key in self.keys:
            title = f' "{key.title}"' if key.title else ""
            lines.append(f"# {key.person}: {self.forge.split()[0]} user {key.account}, key {key.key_id}{title}, "
                         f"{key.fingerprint}")
            options = f'namespaces="{self.namespace}"'
            if key.valid_before is not None:
                options += f',valid-before="{key.valid_before.strftime("%Y%m%d%H%M%S")}Z"'
            lines.append(f"{key.person} {options} {key.key_type} {key.key_b64}")
        return ("\n".join(lines) + "\n").encode("utf-8")


def _sanitize(text: str) -> str:
    # Titles are user-controlled and end up in a comment line: no newline (or any other unprintable) may survive.
    clean = "".join(ch if ch.isprintable() and ch != '"' else "?" for ch in text)
    return clean[:MAX_TITLE_CHARS] + ("..." if len(clean) > MAX_TITLE_CHARS else "")


def _parse_expiry(value: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)  # ValueError on garbage
    if when.tzinfo is None:  # a bare date (GitLab's UI takes one): the start of that day in UTC
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc).replace(microsecond=0)  # floor: never later than the forge says
    # GitLab: the key is expired from expires_at on; allowed_signers' valid-before is inclusive (OpenSSH checks
    # `now > valid_before`, reference §A4 gotcha 1), so the last second it may sign in is one earlier.
    return when - timedelta(seconds=1)


def _check_key(person: str, account: str, kind: str, item: ForgeKey, now: datetime) -> TrustedKey | SkippedKey:
    from gatekeeper.errors import BadSignature
    from gatekeeper.sshsig import Certificate, parse_public_key_line

    title = _sanitize(item.title)

    def skip(reason: str) -> SkippedKey:
        return SkippedKey(person, account, item.key_id, title, reason)

    if kind == "gitlab":
        if item.usage is None:
            return skip("no usage_type (GitLab before 15.7 has no signing keys)")
        if item.usage not in SIGNING_USAGES:
            return skip(f"usage_type {item.usage!r} is not for signing")
    elif item.usage != "user":
        return skip(f"key_type {item.usage or 'missing'!r} is not a user key")
    tokens = item.text.split()
    if len(tokens) < 2:
        return skip("the key text is not 'TYPE BASE64'")
    key_type, key_b64 = tokens[0], tokens[1]
    try:
        key = parse_public_key_line(f"{key_type} {key_b64}", what="key")
    except BadSignature as exc:
        return skip(exc.message)
    if isinstance(key, Certificate):
        return skip("a certificate, not a key")
    # Write the canonical base64 of the parsed blob, never the forge's text (it is checked above, but be exact).
    canonical = base64.b64encode(key.blob).decode("ascii")
    valid_before = None
    if item.expires_at:
        try:
            valid_before = _parse_expiry(item.expires_at)
        except ValueError:
            return skip(f"expires_at {item.expires_at[:40]!r} is not a date")
        if valid_before < now:
            return skip(f"expired at {valid_before + timedelta(seconds=1):%Y-%m-%dT%H:%M:%SZ}")
    return TrustedKey(person, account, item.key_id, key.key_type, canonical, key.fingerprint, key.blob, title,
                      valid_before)


def plan_trust_store(
    people: Mapping[str, Sequence[str]], fetched: Mapping[str, AccountKeys], *, forge: str, kind: str,
    namespace: str, now: datetime,
) -> SyncPlan:
    """Decide the lines of the trust store from what the forge returned (pure; no network).

    Args:
        people: person name -> their platform accounts (in policy order).
        fetched: account -> what the forge returned for it.
        forge: "gitlab https://..." for comments and the report; kind: "gitlab" or "gitea".
        namespace: the policy's ``trust.namespace``.
        now: the current time (UTC) for expiry checks.
    """
    chosen: dict[tuple[str, bytes], TrustedKey] = {}
    skipped: list[SkippedKey] = []
    problems: list[tuple[str, str, str]] = []
    missing: dict[str, tuple[str, ...]] = {}
    for person in sorted(people):
        reasons: list[str] = []
        count_before = sum(1 for p, _ in chosen if p == person)
        for account in people[person]:
            result = fetched[account]
            if result.problem is not None:
                problems.append((person, account, result.problem))
                reasons.append(f"{kind} user {account!r}: {result.problem}")
                continue
            outcomes = [_check_key(person, account, kind, item, now) for item in result.keys]
            good = [o for o in outcomes if isinstance(o, TrustedKey)]
            bad = [o for o in outcomes if isinstance(o, SkippedKey)]
            skipped.extend(bad)
            for key in good:
                previous = chosen.get((person, key.blob))
                # The same key twice for one person (two accounts, a repeated page): one line, the longest validity.
                if previous is None or (previous.valid_before is not None and
                                        (key.valid_before is None or key.valid_before > previous.valid_before)):
                    chosen[(person, key.blob)] = key
            if not good:
                reasons.append(f"{kind} user {account!r} has no signing key"
                               + (f" ({len(bad)} key{'s' if len(bad) != 1 else ''} skipped)" if bad else ""))
        if sum(1 for p, _ in chosen if p == person) == count_before:
            missing[person] = tuple(reasons)
    owners: dict[bytes, list[TrustedKey]] = {}
    for key in chosen.values():
        owners.setdefault(key.blob, []).append(key)
    conflicts = tuple(
        Conflict(keys[0].fingerprint, tuple((k.person, k.account) for k in keys))
        for keys in owners.values() if len(keys) > 1
    )
    ordered = sorted(chosen.values(), key=lambda k: (k.person, k.account.casefold(), k.fingerprint))
    return SyncPlan(forge, namespace, tuple(ordered), tuple(skipped), missing, tuple(problems), conflicts,
                    tuple(sorted(people)))


def collect(forge: Forge, people: Mapping[str, Sequence[str]]) -> dict[str, AccountKeys]:
    """Ask the forge for every account's keys (each account once). Raises ForgeError on any failure."""
    fetched: dict[str, AccountKeys] = {}
    for accounts in people.values():
        for account in accounts:
            if account not in fetched:
                fetched[account] = forge.account_keys(account)
    return fetched


def validate_plan(plan: SyncPlan) -> bytes:
    """The file's bytes, checked exactly as the gate will read them.

    Raises:
        TrustSyncError: a key registered for two people, no key at all, or a file the gate would reject.
    """
    from gatekeeper.allowed_signers import AllowedSigners
    from gatekeeper.errors import ConfigError

    if plan.conflicts:
        lines = [f"key {c.fingerprint} is registered for " + ", ".join(f"{p} ({plan.forge.split()[0]} user {a})"
                                                                         for p, a in c.owners)
                 for c in plan.conflicts]
        raise TrustSyncError(
            "refusing to write the trust store: " + "; ".join(lines),
            hint="one key must belong to one person, or one holder counts as two approvers; remove the key from all "
                 "but its owner's account (the existing allowed_signers file was left unchanged)")
    if not plan.keys:
        raise TrustSyncError("refusing to write an empty trust store: nobody in the policy has a signing key on "
                             f"{plan.forge}",
                             hint="check the forge URL, the token's scope and people.<name>.accounts (the existing "
                                  "allowed_signers file was left unchanged)")
    data = plan.render()
    try:
        AllowedSigners.from_bytes(data, source="generated allowed_signers")
    except ConfigError as exc:  # pragma: no cover - a bug here, but never write what the gate would reject
        raise TrustSyncError(f"the generated trust store does not pass the gate's checks: {exc.message}") from None
    return data


def refuse_large_drop(previous: bytes | None, plan: SyncPlan, *, max_drop_percent: float) -> str | None:
    """Why writing ``plan`` would take keys from too many people at once, else None.

    Counts the people of the current policy who had a line in the previous file and would have none; people who left
    the policy are the policy's decision, not the forge's, and do not count.
    """
    if not previous:
        return None
    from gatekeeper.allowed_signers import parse_allowed_signers

    entries, _ = parse_allowed_signers(previous)
    had = {p for e in entries if not e.cert_authority for p in e.principals if p in plan.people}
    if not had:
        return None
    now_keyed = {k.person for k in plan.keys}
    lost = sorted(had - now_keyed)
    if len(lost) * 100 <= max_drop_percent * len(had):
        return None
    return (f"the sync would take every key from {len(lost)} of the {len(had)} people who had one "
            f"({', '.join(lost)}), more than {max_drop_percent:g}%")


# --------------------------------------------------------------------------------------------------------------------
# writing


@dataclass(frozen=True)
class WriteResult:
    path: Path
    changed: bool
    previous_kept: Path | None


def read_existing(path: Path) -> bytes | None:
    """The current file's bytes, None when it does not exist. Refuses symlinks and non-regular files."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TrustSyncError(f"cannot inspect {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise TrustSyncError(f"{path} is a symbolic link; the sync replaces files, not links",
                             hint="point trust.allowed_signers (or --output) at the real file")
    if not stat.S_ISREG(st.st_mode):
        raise TrustSyncError(f"{path} is not a regular file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TrustSyncError(f"cannot read {path}: {exc.strerror or exc}") from None


@contextmanager
def sync_lock(path: Path) -> Iterator[None]:
    """One sync per trust store at a time (two cron runs must not interleave their renames)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0),
                     0o600)
    except OSError as exc:
        raise TrustSyncError(f"cannot create the lock file {lock_path}: {exc.strerror or exc}",
                             hint="the sync's user needs write access to the trust store's directory") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise TrustSyncError(f"another trust sync holds {lock_path}",
                                     hint="wait for it to finish (the existing file was left unchanged)") from None
            raise
        yield
    finally:
        os.close(fd)


def _replace(target: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            os.fchmod(fd, mode)  # explicit: the umask of a cron job must not decide who may read the trust store
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_trust_store(path: Path, data: bytes, previous: bytes | None) -> WriteResult:
    """Replace ``path`` with ``data`` atomically (mode 0644); keep ``previous`` as ``<path>.prev``.

    The target always exists during the swap (the gate reading it mid-sync sees the old or the new file, never none).
    Nothing is written when the content is unchanged.

    Raises:
        TrustSyncError: the directory is not writable, the disk is full, ...; the trust store is then unchanged.
    """
    if previous == data:
        return WriteResult(path, False, None)
    prev_path = path.with_name(path.name + ".prev")
    try:
        if previous is not None:
            _replace(prev_path, previous, 0o644)
        _replace(path, data, 0o644)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise TrustSyncError(f"cannot write {path}: {exc.strerror or exc}",
                             hint="the sync's user needs write access to the directory; the trust store was left "
                                  "unchanged") from None
    return WriteResult(path, True, prev_path if previous is not None else None)


def unified_diff(previous: bytes | None, data: bytes, path: Path) -> list[str]:
    old = (previous or b"").decode("utf-8", "replace").splitlines(keepends=True)
    new = data.decode("utf-8").splitlines(keepends=True)
    return list(difflib.unified_diff(old, new, fromfile=f"{path} (current)", tofile=f"{path} (synced)"))


# --------------------------------------------------------------------------------------------------------------------
# the report


def report_lines(plan: SyncPlan) -> list[str]:
    """Human report: keys per person, people without a key (they cannot approve), skipped keys and why."""
    out = [f"trust sync from {plan.forge}: {len(plan.keys)} key{'s' if len(plan.keys) != 1 else ''} for "
           f"{len(plan.people) - len(plan.missing)} of {len(plan.people)} people"]
    width = max((len(p) for p in plan.people), default=0)
    for person in plan.people:
        keys = plan.keys_of(person)
        if not keys:
            continue
        details = ", ".join(
            k.fingerprint + (f" until {k.valid_before:%Y-%m-%dT%H:%M:%SZ}" if k.valid_before else "") for k in keys)
        out.append(f"  {person:<{width}}  {len(keys)} key{'s' if len(keys) != 1 else ''}: {details}")
    if plan.missing:
        out.append(f"people without a signing key ({len(plan.missing)}; they cannot approve):")
        for person, reasons in plan.missing.items():
            out.append(f"  {person}: {'; '.join(reasons)}")
    if plan.skipped:
        out.append(f"skipped keys ({len(plan.skipped)}):")
        for s in plan.skipped:
            title = f' "{s.title}"' if s.title else ""
            out.append(f"  {s.person} ({s.account}) key {s.key_id}{title}: {s.reason}")
    notes = [(p, a, why) for p, a, why in plan.account_problems if p not in plan.missing]
    if notes:
        out.append(f"accounts that gave no key ({len(notes)}):")
        for person, account, why in notes:
            out.append(f"  {person}: {plan.forge.split()[0]} user {account!r}: {why}")
    for c in plan.conflicts:
        out.append(f"CONFLICT: key {c.fingerprint} is registered for "
                   + ", ".join(f"{p} (user {a})" for p, a in c.owners))
    return out


def people_accounts(policy_people: Iterable[Any]) -> dict[str, tuple[str, ...]]:
    """person name -> accounts (default: the name), from the policy's Person values."""
    return {p.name: tuple(dict.fromkeys(p.accounts or (p.name,))) for p in policy_people}


# --------------------------------------------------------------------------------------------------------------------
# the whole sync

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_PEOPLE_WITHOUT_KEY = 4  # written, but somebody cannot approve (3 is the CLI's "bug" status)


def _load_policy(config: Path) -> Any:
    from gatekeeper.errors import ConfigError
    from gatekeeper.policy import load_policy

    try:
        return load_policy(config)
    except ConfigError as exc:
        if any("'trust.allowed_signers'" in p and p.endswith("does not exist") for p in exc.problems):
            # The loader (rightly) insists on an existing trust store; an empty file trusts nobody, so creating one
            # is safe, and the first sync then fills it.
            raise ConfigError(exc.message, problems=exc.problems,
                              hint="before the first sync, create the file empty: "
                                   "install -m 0644 /dev/null PATH (an empty trust store trusts nobody)") from None
        raise


def sync(
    *, kind: str, url: str, config: Path, env: Mapping[str, str], out: Any, output: Path | None = None,
    token_file: Path | None = None, dry_run: bool = False, force: bool = False, max_drop_percent: float = 50.0,
    settings: HttpSettings = HttpSettings(), allow_http: bool = False, now: datetime | None = None,
) -> int:
    """Build the trust store from the forge and write it (or, with ``dry_run``, show the diff).

    Returns:
        0 when every person has a key, 4 when the file was written (or would be) but somebody has no signing key.

    Raises:
        TrustSyncError, ConfigError: nothing was written; the message says why.
    """
    policy = _load_policy(config)
    target = Path(output if output is not None else policy.trust.allowed_signers)
    token = read_token(token_file, env)
    forge = make_forge(kind, url, token, settings, allow_http=allow_http,
                       ca_bundle=env.get("REQUESTS_CA_BUNDLE") or env.get("SSL_CERT_FILE") or None)
    people = people_accounts(policy.people.values())
    when = now or datetime.now(timezone.utc)
    lock = sync_lock(target) if not dry_run else _no_lock()
    with lock:
        previous = read_existing(target)
        fetched = collect(forge, people)
        plan = plan_trust_store(people, fetched, forge=f"{kind} {url}", kind=kind,
                                namespace=policy.trust.namespace, now=when)
        for line in report_lines(plan):
            print(line, file=out)
        data = validate_plan(plan)
        too_many = refuse_large_drop(previous, plan, max_drop_percent=max_drop_percent)
        if too_many and not force:
            raise TrustSyncError(f"refusing to write {target}: {too_many}",
                                 hint="check the forge and the token; if the change is right, run again with --force "
                                      "(the existing allowed_signers file was left unchanged)")
        if dry_run:
            diff = unified_diff(previous, data, target)
            out.write("".join(diff) if diff else f"{target} is up to date\n")
            print("dry run: nothing written", file=out)
        else:
            result = write_trust_store(target, data, previous)
            if result.changed:
                kept = f"; previous kept as {result.previous_kept}" if result.previous_kept else ""
                print(f"wrote {target} ({len(plan.keys)} keys{kept})", file=out)
            else:
                print(f"{target} is up to date", file=out)
    return EXIT_PEOPLE_WITHOUT_KEY if plan.missing else EXIT_OK


@contextmanager
def _no_lock() -> Iterator[None]:
    yield
