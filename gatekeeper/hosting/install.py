"""Put the gate's hooks into a repository, and take them out again (pre-commit's installer is the model).

* The shim is tiny and runs the interpreter recorded at install time (an absolute path, never ``python3`` from
  ``PATH``) in isolated mode (``-I``: no ``PYTHONPATH``, no user site-packages), so what runs on the server is exactly
  what the admin installed. If that interpreter disappears the shim refuses pushes with a clear message.
* Our shims carry a marker line; a foreign hook found in place is moved aside to ``<hook>.pre-gatekeeper`` and chained
  (it must pass too), never silently overwritten. Re-running install is idempotent; uninstall restores the saved hook.
* Install validates the policy first and refuses to install a broken one, creates the audit log folder and the
  Ed25519 key that signs the log's checkpoints, and enables push options (for break-glass).
* One shim writer serves every layout: a plain repository's ``hooks/<hook>``, a Gitea/Forgejo repository's
  ``hooks/<hook>.d/gatekeeper`` and GitLab's ``<custom_hooks_dir>/<hook>.d/gatekeeper`` (see
  :mod:`gatekeeper.hosting.forges`).
  :func:`inspect_shim` is the other half: it says whether a file is exactly the shim the writer would write now.
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gatekeeper.errors import GatekeeperError

if TYPE_CHECKING:
    from gatekeeper.policy.config import Policy

MARKER = "# gatekeeper-managed-hook v1"
SAVED_SUFFIX = ".pre-gatekeeper"
HOOKS = ("pre-receive", "post-receive")


class InstallError(GatekeeperError):
    pass


@dataclass(frozen=True)
class InstallReport:
    git_dir: Path
    written: tuple[Path, ...]
    chained: tuple[Path, ...]
    key_created: Path | None
    log: Path


def find_git_dir(repo: Path) -> Path:
    repo = repo.absolute()
    if (repo / "HEAD").is_file() and (repo / "objects").is_dir():
        return repo
    if (repo / ".git" / "HEAD").is_file():
        return repo / ".git"
    raise InstallError(f"{repo} is not a git repository", hint="give the path of the bare repository, e.g. repo.git")


def shim_text(
    hook: str,
    *,
    python: str,
    config: Path,
    fallback_log: Path | None,
    chain: Path | None,
    message_prefix: str = "",
) -> str:
    """The shim for ``hook``. ``message_prefix`` goes in front of the one line the shim itself may print (GitLab's
    web UI shows only ``GL-HOOK-ERR:`` lines, reference §10.3)."""
    args = ["-I", "-m", "gatekeeper", "hook", hook, "--config", str(config)]
    if fallback_log is not None:
        args += ["--fallback-log", str(fallback_log)]
    if chain is not None:
        args += ["--chain", str(chain)]
    missing_exit = "1" if hook == "pre-receive" else "0"
    return (
        "#!/bin/sh\n"
        f"{MARKER}\n"
        "# Installed by `gatekeeper install`; do not edit. `gatekeeper uninstall` restores the previous hook.\n"
        f"GATEKEEPER_PYTHON={shlex.quote(python)}\n"
        'if [ ! -x "$GATEKEEPER_PYTHON" ]; then\n'
        f'    echo "{message_prefix}gatekeeper: push REFUSED: the gate\'s interpreter $GATEKEEPER_PYTHON is missing;'
        ' an admin must re-run gatekeeper install" >&2\n'
        f"    exit {missing_exit}\n"
        "fi\n"
        f'exec "$GATEKEEPER_PYTHON" {" ".join(shlex.quote(a) for a in args)}\n'
    )


@dataclass(frozen=True)
class ShimSpec:
    """What every shim of one installation records: the interpreter, the policy, the fallback log, the prefix."""

    python: str
    config: Path
    fallback_log: Path | None
    message_prefix: str = ""

    def text(self, hook: str, *, chain: Path | None = None) -> str:
        return shim_text(
            hook, python=self.python, config=self.config, fallback_log=self.fallback_log, chain=chain,
            message_prefix=self.message_prefix,
        )


@dataclass(frozen=True)
class ShimState:
    """What :func:`inspect_shim` found. ``problems`` is empty exactly when the file is the expected shim."""

    path: Path
    problems: tuple[str, ...]
    ours: bool  # carries our marker (so sync may rewrite it)
    python: str | None = None  # the interpreter it records, if ours

    @property
    def ok(self) -> bool:
        return not self.problems


MAX_SHIM_BYTES = 64 * 1024  # a shim is < 1 KiB; anything much bigger is not ours and is not read whole


def inspect_shim(path: Path, expected: str) -> ShimState:
    """Compare ``path`` with the shim text ``expected``; name every way it falls short (doctor's per-file check).

    Problems, most fundamental first: missing; not a regular file (a symlink or directory is never ours: Gitea's
    dispatcher would follow a symlink to whatever it points at); foreign (no marker: someone else's script under our
    name); not executable (the dispatchers skip it silently); the recorded interpreter is missing; the recorded policy
    is missing; stale (any other difference from what install would write now).
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        return ShimState(path, ("missing",), False)
    except OSError as exc:
        return ShimState(path, (f"unreadable ({exc.strerror})",), False)
    if not stat.S_ISREG(st.st_mode):
        return ShimState(path, ("not a regular file (symlink or directory)",), False)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SHIM_BYTES + 1)
    except OSError as exc:
        return ShimState(path, (f"unreadable ({exc.strerror})",), False)
    if MARKER.encode() not in raw[:4096]:
        return ShimState(path, ("foreign: not written by gatekeeper",), False)
    problems: list[str] = []
    if st.st_mode & 0o111 != 0o111:
        # Written 0755; the forge runs it as its own user, which doctor cannot know, so every x bit must be set.
        problems.append(f"not executable by every user (mode {stat.S_IMODE(st.st_mode):04o}; the dispatcher skips it)")
    text = raw.decode("utf-8", "replace")
    recorded = _recorded(text)
    python = recorded.get("python")
    if python is None or not os.access(python, os.X_OK):
        problems.append(f"interpreter {python or '(none recorded)'} is missing or not executable")
    config = recorded.get("config")
    if config is None or not Path(config).is_file():
        problems.append(f"policy {config or '(none recorded)'} is missing")
    if text != expected:
        wanted = _recorded(expected)
        details = [
            f"{key} {recorded.get(key)} (expected {wanted.get(key)})"
            for key in ("python", "config", "fallback_log", "chain")
            if recorded.get(key) != wanted.get(key)
        ]
        problems.append("stale: records " + "; ".join(details) if details else "stale: an older shim version")
    return ShimState(path, tuple(problems), True, python)


def _recorded(text: str) -> dict[str, str]:
    """The interpreter and arguments a shim records (best effort: a shim we cannot parse is reported as stale)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        try:
            if line.startswith("GATEKEEPER_PYTHON="):
                words = shlex.split(line[len("GATEKEEPER_PYTHON="):])
                if len(words) == 1:
                    found["python"] = words[0]
            elif line.startswith('exec "$GATEKEEPER_PYTHON" '):
                words = shlex.split(line[len('exec "$GATEKEEPER_PYTHON" '):])
                for flag, key in (("--config", "config"), ("--fallback-log", "fallback_log"), ("--chain", "chain")):
                    if flag in words[:-1]:
                        found[key] = words[words.index(flag) + 1]
        except ValueError:  # unbalanced quotes: leave the key out, the text comparison reports it
            continue
    return found


def write_shim(path: Path, text: str) -> bool:
    """Write ``text`` as an executable shim at ``path`` unless it is already exactly that. Returns whether it wrote.

    Never replaces a foreign file: callers decide what to do with one (plain install moves it aside and chains it;
    forge layouts refuse). The write is atomic (temporary file + rename) and the temporary name starts with ``.`` and
    ends with ``~``, so neither Gitea's dispatcher (``*`` skips dot files) nor Gitaly (skips ``*~``) would run a
    half-written leftover.
    """
    state = inspect_shim(path, text)
    if state.ok:
        return False
    if not state.ours and state.problems != ("missing",):
        raise InstallError(
            f"{path} exists and is not gatekeeper's ({state.problems[0]})",
            hint="move it away (it is someone else's hook), then re-run",
        )
    _write_executable(path, text)
    return True


def is_ours(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return MARKER.encode() in head


def install(
    repo: Path,
    *,
    config: Path,
    python: str | None = None,
    hooks_dir: Path | None = None,
) -> InstallReport:
    git_dir = find_git_dir(repo)
    hooks_path = _git_config(git_dir, "core.hooksPath")
    if hooks_path and hooks_dir is None:
        raise InstallError(
            f"cowardly refusing to install: core.hooksPath is set to {hooks_path!r}, so hooks/ would be ignored",
            hint=f"git --git-dir {shlex.quote(str(git_dir))} config --unset-all core.hooksPath",
        )
    existing = git_dir / "hooks" / "pre-receive"
    if hooks_dir is None and existing.is_file() and not is_ours(existing):
        with existing.open("rb") as fh:
            head = fh.read(4096)
            if b"AUTO GENERATED BY GITEA" in head or b"${hookname}.d/*" in head:
                # Gitea rewrites hooks/pre-receive (regenerate hooks, resync cron): a chained install would vanish.
                raise InstallError(
                    f"{existing} is Gitea's (or Forgejo's) dispatcher; "
                    "the gate belongs in hooks/pre-receive.d/ instead",
                    hint="gatekeeper install --gitea ROOT|APP_INI --config FILE (covers every repository)",
                )
    spec, policy, key = prepare(config, python=python, create_key=True)
    _refuse_trusted_files_in_work_trees(git_dir, policy)
    log = spec.fallback_log
    assert log is not None
    target = hooks_dir or git_dir / "hooks"
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    chained: list[Path] = []
    for hook in HOOKS:
        path = target / hook
        saved = target / (hook + SAVED_SUFFIX)
        if path.exists() or path.is_symlink():
            if not is_ours(path):
                if saved.exists():
                    raise InstallError(
                        f"{path} is not gatekeeper's, and {saved.name} already holds a saved hook",
                        hint="merge the two hooks by hand, then re-run install",
                    )
                os.rename(path, saved)
        chain = saved if saved.exists() else None
        if chain is not None:
            chained.append(chain)
        _write_executable(path, spec.text(hook, chain=chain))
        written.append(path)
    # Break-glass and other options travel as push options; git refuses them unless advertised.
    _set_git_config(git_dir, "receive.advertisePushOptions", "true")
    return InstallReport(git_dir, tuple(written), tuple(chained), key, log)


def prepare(
    config: Path, *, python: str | None, message_prefix: str = "", create_key: bool, check_interpreter: bool = True,
) -> tuple[ShimSpec, Policy, Path | None]:
    """Validate the policy (a broken one is never installed) and the interpreter, and say what every shim of this
    installation records. With ``create_key``, also create the audit log folder and checkpoint signing key.
    Returns the spec, the loaded policy and the key created (if any)."""
    from gatekeeper.policy.config import load_policy

    config = config.absolute()
    policy = load_policy(config)
    interpreter = python or os.path.abspath(sys.executable)
    if check_interpreter and (not os.path.isabs(interpreter) or not os.access(interpreter, os.X_OK)):
        raise InstallError(
            f"interpreter {interpreter} is not an executable absolute path",
            hint="give --python the absolute path of the interpreter that has gatekeeper installed",
        )
    key = _ensure_audit_key(policy) if create_key else None
    return ShimSpec(interpreter, config, Path(policy.audit.log), message_prefix), policy, key


def _refuse_trusted_files_in_work_trees(git_dir: Path, policy: Policy) -> None:
    """A policy, trust store or audit log in a work tree of the repository is one its pushes can rewrite
    (:mod:`gatekeeper.policy.trusted_files`); the hook checks again on every push."""
    from gatekeeper.policy.trusted_files import TrustedFileExposed, refuse_exposed
    from gatekeeper.push.gitrepo import Repo

    try:
        refuse_exposed(policy, Repo.open(git_dir).work_trees())
    except TrustedFileExposed as exc:
        raise InstallError(f"cowardly refusing to install: {exc.message}", hint=exc.hint) from exc


def uninstall(repo: Path, *, hooks_dir: Path | None = None) -> list[str]:
    git_dir = find_git_dir(repo)
    target = hooks_dir or git_dir / "hooks"
    actions: list[str] = []
    for hook in HOOKS:
        path = target / hook
        saved = target / (hook + SAVED_SUFFIX)
        if path.exists() and is_ours(path):
            path.unlink()
            actions.append(f"removed {path}")
        if saved.exists() and not path.exists():
            os.rename(saved, path)
            actions.append(f"restored {path} from {saved.name}")
    return actions


def _ensure_audit_key(policy: Policy) -> Path | None:
    from gatekeeper.audit.keys import generate_signing_key
    from gatekeeper.push.hook import audit_origin

    log = Path(policy.audit.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    key = Path(policy.audit.signing_key)  # the policy defaults it to audit-signing.key beside the log
    if key.exists():
        return None
    key.parent.mkdir(parents=True, exist_ok=True)
    generate_signing_key(key, name=policy.audit.origin or audit_origin())
    return key


def _write_executable(path: Path, text: str) -> None:
    from gatekeeper.fsutil import fsync_dir, replace_file

    replace_file(path, text.encode(), mode=0o755)
    fsync_dir(path.parent)


def _git_config(git_dir: Path, key: str) -> str | None:
    proc = subprocess.run(
        ["git", "config", "--file", str(git_dir / "config"), "--get", key],
        capture_output=True, text=True, check=False,
    )
    return proc.stdout.strip() or None


def _set_git_config(git_dir: Path, key: str, value: str) -> None:
    subprocess.run(["git", "config", "--file", str(git_dir / "config"), key, value], check=True)
