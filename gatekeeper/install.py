"""Put the gate's hooks into a repository, and take them out again (pre-commit's installer is the model).

* The shim is tiny and runs the interpreter recorded at install time (an absolute path, never ``python3`` from
  ``PATH``) in isolated mode (``-I``: no ``PYTHONPATH``, no user site-packages), so what runs on the server is exactly
  what the admin installed. If that interpreter disappears the shim refuses pushes with a clear message.
* Our shims carry a marker line; a foreign hook found in place is moved aside to ``<hook>.pre-gatekeeper`` and chained
  (it must pass too), never silently overwritten. Re-running install is idempotent; uninstall restores the saved hook.
* Install validates the policy first and refuses to install a broken one, creates the audit log folder and the
  Ed25519 key that signs the log's checkpoints, and enables push options (for break-glass).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.errors import GatekeeperError

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


def shim_text(hook: str, *, python: str, config: Path, fallback_log: Path | None, chain: Path | None) -> str:
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
        '    echo "gatekeeper: push REFUSED: the gate\'s interpreter $GATEKEEPER_PYTHON is missing;'
        ' an admin must re-run gatekeeper install" >&2\n'
        f"    exit {missing_exit}\n"
        "fi\n"
        f'exec "$GATEKEEPER_PYTHON" {" ".join(shlex.quote(a) for a in args)}\n'
    )


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
    from gatekeeper.policy import load_policy

    git_dir = find_git_dir(repo)
    hooks_path = _git_config(git_dir, "core.hooksPath")
    if hooks_path and hooks_dir is None:
        raise InstallError(
            f"cowardly refusing to install: core.hooksPath is set to {hooks_path!r}, so hooks/ would be ignored",
            hint=f"git --git-dir {shlex.quote(str(git_dir))} config --unset-all core.hooksPath",
        )
    config = config.absolute()
    policy = load_policy(config)  # refuses a broken policy before anything is touched
    interpreter = python or os.path.abspath(sys.executable)
    if not os.access(interpreter, os.X_OK):
        raise InstallError(f"interpreter {interpreter} is not executable")
    log = Path(policy.audit.log)
    key = _ensure_audit_key(policy)
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
        _write_executable(path, shim_text(hook, python=interpreter, config=config, fallback_log=log, chain=chain))
        written.append(path)
    # Break-glass and other options travel as push options; git refuses them unless advertised.
    _set_git_config(git_dir, "receive.advertisePushOptions", "true")
    return InstallReport(git_dir, tuple(written), tuple(chained), key, log)


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


def _ensure_audit_key(policy: object) -> Path | None:
    from gatekeeper.audit.keys import generate_signing_key
    from gatekeeper.hook import audit_origin

    log = Path(policy.audit.log)  # type: ignore[attr-defined]
    log.parent.mkdir(parents=True, exist_ok=True)
    key = Path(policy.audit.signing_key) if policy.audit.signing_key else log.parent / "audit-signing.key"  # type: ignore[attr-defined]
    if key.exists():
        return None
    key.parent.mkdir(parents=True, exist_ok=True)
    generate_signing_key(key, name=audit_origin())
    return key


def _write_executable(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".gatekeeper-tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def _git_config(git_dir: Path, key: str) -> str | None:
    proc = subprocess.run(
        ["git", "config", "--file", str(git_dir / "config"), "--get", key],
        capture_output=True, text=True, check=False,
    )
    return proc.stdout.strip() or None


def _set_git_config(git_dir: Path, key: str, value: str) -> None:
    subprocess.run(["git", "config", "--file", str(git_dir / "config"), key, value], check=True)
