"""Where the gate goes on Gitea/Forgejo and GitLab servers, and how to keep it there (reference §9.1, §10.1).

Gitea and Forgejo
    Every repository gets generic dispatchers ``hooks/pre-receive`` and ``hooks/post-receive`` that run each executable
    regular file in ``hooks/<hook>.d/*`` (all of them, even after one failed). Gitea rewrites the dispatchers and its
    own ``<hook>.d/gitea`` on repository creation, ``gitea admin regenerate hooks`` and the ``resync_all_hooks`` cron
    task; its web hook editor owns ``<hook>.d/<hook>``. So the gate lives in ``hooks/<hook>.d/gatekeeper``, a name
    Gitea never writes, which survives all of those. Gitea has no global hook directory, so repositories created
    after install need the gate too: :func:`run_forge` with ``fix=True`` (``gatekeeper sync``, from cron or a
    systemd timer) puts it there; with ``fix=False`` (``gatekeeper doctor``) it lists every repository without a
    working gate. Repositories live at ``<ROOT>/<owner>/<name>.git`` (wikis
    ``<name>.wiki.git``), ROOT being ``[repository] ROOT`` of ``app.ini`` (default
    ``<APP_DATA_PATH>/gitea-repositories``).

GitLab (self-managed, Gitaly)
    Gitaly ignores the repository's ``hooks/`` and runs ``<custom_hooks_dir>/<hook>.d/*`` for every repository (sorted,
    executable, not ending in ``~``; the first failure stops the chain). One server-wide pair of files is the whole
    install: ``<custom_hooks_dir>/pre-receive.d/gatekeeper`` and ``post-receive.d/gatekeeper``, whose messages carry
    the ``GL-HOOK-ERR: `` prefix.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.errors import GatekeeperError
from gatekeeper.hosting.install import HOOKS, InstallError, ShimSpec, inspect_shim, write_shim

GATE_NAME = "gatekeeper"  # not "gitea" (Gitea's own), not "<hook>" (Gitea's web hook editor)
GITEA_DEFAULT_ROOT = "gitea-repositories"  # under APP_DATA_PATH (modules/setting/repository.go)
MAX_APP_INI_BYTES = 1024 * 1024
MAX_INTERPOLATION_DEPTH = 99  # go-ini's _DEPTH_VALUES
SYNC_LOCK_NAME = "forge-sync.lock"


class ForgeError(GatekeeperError):
    """A forge layout could not be found or read (app.ini, repository root, custom hooks directory)."""


@dataclass(frozen=True)
class Site:
    """One place the gate must be: a Gitea repository (its ``hooks/``) or GitLab's global custom hooks directory."""

    kind: str  # "gitea" | "gitlab"
    label: str  # what reports call it: "owner/name.git" or the directory
    hooks_dir: Path
    git_dir: Path | None = None  # Gitea only

    def gate_path(self, hook: str) -> Path:
        return self.hooks_dir / f"{hook}.d" / GATE_NAME


@dataclass(frozen=True)
class SiteReport:
    site: Site
    written: tuple[Path, ...] = ()
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ForgeReport:
    """The outcome of an install, sync or doctor run over every site."""

    kind: str
    location: Path
    sites: tuple[SiteReport, ...]
    global_problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    key_created: Path | None = None

    @property
    def broken(self) -> tuple[SiteReport, ...]:
        return tuple(r for r in self.sites if r.problems)

    @property
    def changed(self) -> tuple[SiteReport, ...]:
        return tuple(r for r in self.sites if r.written)

    @property
    def ok(self) -> bool:
        return not self.global_problems and not self.broken


# -- Gitea: app.ini and the repository root ---------------------------------------------------------------------------

def read_app_ini(path: Path) -> dict[str, dict[str, str]]:
    """Parse Gitea's ``app.ini`` as Gitea does, into section -> key -> value.

    Gitea reads it with go-ini and ``LoadOptions{IgnoreContinuation: true}`` (``modules/setting/config_provider.go``
    ``configProviderLoadOptions()``), so, unlike Python's configparser: keys and sections are case-sensitive (``root``
    is not ``ROOT``); ``=`` or ``:`` separates key and value; keys before the first section and ``[DEFAULT]`` form the
    default section ``""`` (``WORK_PATH``, ``RUN_USER``); ``#`` or ``;`` anywhere in an unquoted value starts a comment
    (``ROOT = /srv/git ; moved`` is ``/srv/git``); a value in backticks or triple double quotes is raw (and may span
    lines); a value wrapped in single or double quotes is unwrapped; no backslash continuation; the last of duplicate
    keys wins; ``%(KEY)s`` is expanded from the same section, then the default one.
    """
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_APP_INI_BYTES + 1)
    except OSError as exc:
        raise ForgeError(f"cannot read {path}: {exc.strerror}", hint="give the path of Gitea's app.ini") from exc
    if len(raw) > MAX_APP_INI_BYTES:
        raise ForgeError(f"{path} is larger than {MAX_APP_INI_BYTES} bytes; that is not an app.ini")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ForgeError(f"{path} is not UTF-8 text (byte {exc.start})") from exc
    sections: dict[str, dict[str, str]] = {"": {}}
    current = sections[""]
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number, stripped = index + 1, lines[index].strip()
        index += 1
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            close = stripped.find("]")
            if close < 0:
                raise ForgeError(f"{path}:{number}: unclosed section header {stripped!r}")
            name = stripped[1:close].strip()
            current = sections.setdefault("" if name == "DEFAULT" else name, {})
            continue
        cut = min((i for i in (stripped.find("="), stripped.find(":")) if i >= 0), default=-1)
        key = (stripped[:cut] if cut >= 0 else stripped).strip()
        if not key:
            raise ForgeError(f"{path}:{number}: a value without a key")
        value = stripped[cut + 1:].strip() if cut >= 0 else ""
        quote = '"""' if value.startswith('"""') else "`" if value.startswith("`") else ""
        if quote:
            body = value[len(quote):]
            while quote not in body:
                if index >= len(lines):
                    raise ForgeError(f"{path}:{number}: the value of {key!r} opens {quote} and never closes it")
                body += "\n" + lines[index]
                index += 1
            value = body[:body.rindex(quote)]
        else:
            comment = min((i for i in (value.find("#"), value.find(";")) if i >= 0), default=-1)
            value = (value[:comment] if comment >= 0 else value).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" and value[0] not in value[1:-1]:
                value = value[1:-1]
        current[key] = value
    return {name: {k: _interpolate(v, values, sections[""], path) for k, v in values.items()}
            for name, values in sections.items()}


_INTERPOLATION = re.compile(r"%\(([^)]*)\)s")


def _interpolate(value: str, section: Mapping[str, str], default: Mapping[str, str], path: Path) -> str:
    for _ in range(MAX_INTERPOLATION_DEPTH):
        match = _INTERPOLATION.search(value)
        if match is None:
            return value
        name = match.group(1)
        if name in section:
            replacement = section[name]
        elif name in default:
            replacement = default[name]
        else:
            return value  # go-ini leaves an unknown reference as it is
        value = value[:match.start()] + replacement + value[match.end():]
    raise ForgeError(f"{path}: %(...)s references nest deeper than {MAX_INTERPOLATION_DEPTH} levels (a cycle?)")


def gitea_root_from_app_ini(app_ini: Path) -> Path:
    """``[repository] ROOT``, else ``<APP_DATA_PATH>/gitea-repositories``; relative paths are relative to Gitea's work
    path (``WORK_PATH`` in app.ini, else the folder holding ``custom/conf/app.ini``)."""
    ini = read_app_ini(app_ini)
    work = ini[""].get("WORK_PATH", "")
    if not work:
        parts = app_ini.absolute().parts
        if len(parts) >= 4 and parts[-3:-1] == ("custom", "conf"):
            work = str(Path(*parts[:-3]))

    def absolute(value: str, what: str) -> Path:
        if os.path.isabs(value):
            return Path(os.path.normpath(value))
        if not work:
            raise ForgeError(
                f"{app_ini}: {what} is the relative path {value!r} and Gitea's work path is unknown",
                hint="set WORK_PATH at the top of app.ini, or pass the repository root itself: --gitea /path/to/root",
            )
        return Path(os.path.normpath(os.path.join(work, value)))

    root = ini.get("repository", {}).get("ROOT", "")
    if root:
        return absolute(root, "[repository] ROOT")
    data = ini.get("server", {}).get("APP_DATA_PATH", "") or "data"
    return absolute(data, "[server] APP_DATA_PATH") / GITEA_DEFAULT_ROOT


def gitea_root(location: Path) -> Path:
    """The repository root named by ``--gitea``: an ``app.ini``, Gitea's work path (holding ``custom/conf/app.ini``),
    or the repository root itself."""
    location = location.absolute()
    if location.is_file():
        root = gitea_root_from_app_ini(location)
    elif (location / "custom" / "conf" / "app.ini").is_file():
        root = gitea_root_from_app_ini(location / "custom" / "conf" / "app.ini")
    else:
        root = location
    if not root.is_dir():
        raise ForgeError(
            f"Gitea repository root {root} is not a directory",
            hint="pass [repository] ROOT of app.ini, or app.ini itself: --gitea /etc/gitea/app.ini",
        )
    return root


def gitea_repositories(root: Path) -> list[Path]:
    """Every ``<root>/<owner>/<name>.git`` directory (wikis are ``<name>.wiki.git``), sorted. Dot entries are skipped
    (they are not Gitea owners); a ``.git`` entry that is not a repository is returned too, so that doctor names it."""
    found: list[Path] = []
    for owner in _sorted_dirs(root):
        found.extend(repo for repo in _sorted_dirs(owner) if repo.name.endswith(".git"))
    return found


def _sorted_dirs(directory: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise ForgeError(f"cannot list {directory}: {exc.strerror}") from exc
    return [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir()]


def gitea_sites(location: Path) -> tuple[Path, list[Site]]:
    root = gitea_root(location)
    sites = [
        Site("gitea", str(repo.relative_to(root)), repo / "hooks", git_dir=repo) for repo in gitea_repositories(root)
    ]
    return root, sites


def gitlab_site(custom_hooks_dir: Path) -> Site:
    directory = custom_hooks_dir.absolute()
    if not directory.is_dir():
        raise ForgeError(
            f"GitLab custom hooks directory {directory} does not exist",
            hint=(
                "create it and point Gitaly at it: gitaly['configuration'][:hooks][:custom_hooks_dir] in gitlab.rb "
                "(omnibus), or [hooks] custom_hooks_dir in Gitaly's config.toml; then gitlab-ctl reconfigure"
            ),
        )
    return Site("gitlab", str(directory), directory)


# -- checking and fixing sites ----------------------------------------------------------------------------------------

def check_site(site: Site, spec: ShimSpec) -> list[str]:
    """Every reason the gate would not run, or not run as installed, at ``site`` (empty: it works)."""
    problems: list[str] = []
    if site.git_dir is not None:
        if not ((site.git_dir / "HEAD").is_file() and (site.git_dir / "objects").is_dir()):
            return ["not a git repository (no HEAD or objects/)"]
        hooks_path = _hooks_path(site.git_dir)
        if hooks_path:
            problems.append(f"core.hooksPath is set to {hooks_path!r}: hooks/ and the gate in it are ignored")
    for hook in HOOKS:
        if site.kind == "gitea":
            problems.extend(_check_gitea_dispatcher(site.hooks_dir / hook, hook))
        state = inspect_shim(site.gate_path(hook), spec.text(hook))
        found = list(state.problems)
        if state.python and os.access(state.python, os.X_OK):
            broken = interpreter_problem(state.python)
            if broken:
                found.insert(0, broken)
        problems.extend(f"{hook}.d/{GATE_NAME}: {problem}" for problem in found)
    return problems


@functools.cache
def interpreter_problem(python: str) -> str | None:
    """Run the recorded interpreter exactly as the shim does (``-I -m gatekeeper``), once per interpreter: an
    interpreter that exists but cannot import gatekeeper (a rebuilt venv, the system python) refuses every push."""
    try:
        proc = subprocess.run(
            [python, "-I", "-m", "gatekeeper", "--version"], capture_output=True, timeout=60, check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"interpreter {python} does not run gatekeeper ({exc})"
    if proc.returncode != 0 or not proc.stdout.startswith(b"gatekeeper "):
        detail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
        return f"interpreter {python} does not run gatekeeper ({detail[-1] if detail else f'exit {proc.returncode}'})"
    return None


def _check_gitea_dispatcher(path: Path, hook: str) -> list[str]:
    """Gitea's generated ``hooks/<hook>`` must exist and run ``hooks/<hook>.d/*``, or nothing in ``.d/`` runs."""
    regenerate = "run: gitea admin regenerate hooks"
    try:
        st = path.stat()
        with path.open("rb") as fh:
            text = fh.read(64 * 1024).decode("utf-8", "replace")
    except OSError:
        return [f"Gitea's dispatcher hooks/{hook} is missing, so hooks/{hook}.d/* never run ({regenerate})"]
    problems = []
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & stat.S_IXUSR:
        problems.append(f"Gitea's dispatcher hooks/{hook} is not an executable file ({regenerate})")
    if "${hookname}.d/*" not in text and f"hooks/{hook}.d/" not in text:
        problems.append(f"hooks/{hook} is not Gitea's dispatcher: hooks/{hook}.d/* never run ({regenerate})")
    return problems


def sync_site(site: Site, spec: ShimSpec, *, fix: bool) -> SiteReport:
    """Check ``site``; with ``fix``, first write every missing or stale gate file (a foreign file under our name is
    never replaced: check_site reports it). Returns what was written and the problems left afterwards."""
    written: list[Path] = []
    problems: list[str] = []
    if fix and (site.git_dir is None or (site.git_dir / "HEAD").is_file()):
        for hook in HOOKS:
            path = site.gate_path(hook)
            try:
                if not path.parent.is_dir():
                    path.parent.mkdir(parents=True)
                    _same_owner_as(path.parent, site.hooks_dir)
                if write_shim(path, spec.text(hook)):
                    written.append(path)
            except InstallError:
                continue  # foreign: reported below
            except OSError as exc:
                problems.append(f"cannot write {path}: {exc.strerror}")
    problems.extend(check_site(site, spec))
    return SiteReport(site, tuple(written), tuple(problems))


def run_forge(
    *,
    gitea: Path | None,
    gitlab: Path | None,
    config: Path,
    python: str | None,
    fix: bool,
    wait_seconds: float = 60.0,
) -> ForgeReport:
    """``install``/``sync`` (``fix=True``) or ``doctor`` (``fix=False``) over one Gitea root or GitLab directory.

    The policy is validated first (a broken one is never installed); with ``fix`` the audit signing key is created
    if missing and every site is written under one lock, so overlapping cron runs cannot interleave.
    """
    from gatekeeper.hosting.install import prepare

    if (gitea is None) == (gitlab is None):
        raise ForgeError("give exactly one of --gitea and --gitlab-custom-hooks-dir")
    kind = "gitea" if gitea is not None else "gitlab"
    prefix = "GL-HOOK-ERR: " if kind == "gitlab" else ""
    # doctor reports a missing interpreter (with every shim that records it) instead of stopping at it
    spec, policy, key = prepare(config, python=python, message_prefix=prefix, create_key=fix, check_interpreter=fix)
    if gitea is not None:
        location, sites = gitea_sites(gitea)
    else:
        assert gitlab is not None
        site = gitlab_site(gitlab)
        location, sites = site.hooks_dir, [site]
    warnings: list[str] = []
    global_problems: list[str] = []
    platform = str(getattr(policy, "platform", kind))
    if platform != kind:
        warnings.append(
            f"the policy says platform: {platform}; pin platform: {kind} so that missing {kind} variables "
            "refuse a push instead of falling back to a weaker identity"
        )
    if not os.access(spec.python, os.X_OK):
        global_problems.append(f"the interpreter the gate should run, {spec.python}, is missing or not executable")
    if not sites:
        global_problems.append(f"no repositories found under {location} (is it Gitea's [repository] ROOT?)")
    if fix:
        lock = Path(policy.audit.log).parent / SYNC_LOCK_NAME
        with sync_lock(lock, wait_seconds=wait_seconds):
            reports = tuple(sync_site(site, spec, fix=True) for site in sites)
    else:
        reports = tuple(sync_site(site, spec, fix=False) for site in sites)
    return ForgeReport(kind, location, reports, tuple(global_problems), tuple(warnings), key)


def _same_owner_as(path: Path, model: Path) -> None:
    """Run as root, give a directory we created to the owner of ``hooks/``: Gitea (running as its own user) must still
    be able to write ``<hook>.d/gitea`` into it when it regenerates hooks."""
    if os.geteuid() != 0:
        return
    st = model.stat()
    os.chown(path, st.st_uid, st.st_gid)


def remove_site(site: Site) -> list[Path]:
    """Remove the gate's files at ``site`` (only files carrying our marker)."""
    from gatekeeper.hosting.install import is_ours

    removed = []
    for hook in HOOKS:
        path = site.gate_path(hook)
        if path.is_file() and not path.is_symlink() and is_ours(path):
            path.unlink()
            removed.append(path)
    return removed


def _hooks_path(git_dir: Path) -> str | None:
    """``core.hooksPath`` as git sees it for this repository, read in-process through the git access module (a ``git
    config`` process per repository costs seconds on a server with thousands). An unreadable repository is reported
    as if it set one: the gate's state there is unknown."""
    from gatekeeper.push.gitrepo import Repo

    try:
        return Repo.open(git_dir).config_value("core.hooksPath")
    except GatekeeperError as exc:
        return f"(unreadable: {exc.message})"


# -- the sync lock ----------------------------------------------------------------------------------------------------

@contextmanager
def sync_lock(path: Path, *, wait_seconds: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (cron and a systemd timer, or an admin, may overlap): wait up to
    ``wait_seconds`` for a running sync, then give up with an error rather than pile up behind it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise ForgeError(
            f"cannot open the sync lock {path}: {exc.strerror}",
            hint="run sync as the user that owns the audit log folder (the Gitea or git user)",
        ) from exc
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    raise ForgeError(
                        f"another gatekeeper sync holds {path}",
                        hint="wait for it to finish (or raise --wait); a stale lock is released when its process exits",
                    ) from exc
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock
