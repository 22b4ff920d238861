"""What a test needs from the machine, in one place: programs, daemons, the shared corpora, an unprivileged account.

``need()`` is the only way a test gives up for a missing part. On a developer's machine it skips with the Debian
package to install; under ``CI=true`` it fails, because ``.ci/run`` installs every part and a part that went missing
there means the tests that guard it silently stopped running.

The corpora live in ``shared/`` next to the checkout (CI clones into a folder with ``shared/`` beside it). A git
worktree also looks next to its main checkout, so ``/work/wt/NAME`` finds ``/work/shared`` through ``/work/main``.

A module with its own name (not ``conftest``): per-directory conftest modules would shadow ``from conftest import``.
"""

from __future__ import annotations

import os
import pickle
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def need(present: object, what: str, package: str) -> None:
    """Give up on this test (or module) when ``present`` is falsy: skip locally, fail under ``CI=true``."""
    if present:
        return
    message = f"{what} is missing (Debian package {package}; .ci/run installs it)" if package else f"{what} is missing"
    if under_ci():
        pytest.fail(f"{message}; under CI=true a missing part fails the run instead of skipping", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def need_program(name: str, package: str) -> str:
    """The absolute path of ``name`` on PATH (or an absolute ``name`` that exists)."""
    found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
    need(found, name, package)
    assert found is not None
    return found


def _checkouts() -> list[Path]:
    """This checkout, and the main checkout when this one is a git worktree (``.git`` is then a file)."""
    roots = [REPO_ROOT]
    dot_git = REPO_ROOT / ".git"
    if dot_git.is_file():
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            gitdir = (REPO_ROOT / text.removeprefix("gitdir:").strip()).resolve()  # MAIN/.git/worktrees/NAME
            if gitdir.parent.name == "worktrees":
                roots.append(gitdir.parents[2])
    return roots


def shared_dir() -> Path:
    """``shared/`` beside the checkout (or beside the main checkout of a worktree); the first candidate if none."""
    candidates = [root.parent / "shared" for root in _checkouts()]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def corpus(name: str) -> Path:
    """``shared/corpora/NAME``, required like any other part."""
    path = shared_dir() / "corpora" / name
    need(path.is_dir(), f"the shared corpus {path}", "")
    return path


# -- an unprivileged account --------------------------------------------------------------------------------------

UNPRIVILEGED_NAME = "gatekeeper-test"


@dataclass(frozen=True)
class Unprivileged:
    """A real account without privileges. As root (CI runs as root) tests drop to it; otherwise they already run
    unprivileged and ``uid`` is the current user. ``folder`` belongs to the account and is reachable by it (pytest's
    own temporary folders sit below a 0700 directory of root)."""

    name: str
    uid: int
    gid: int
    folder: Path

    @property
    def dropping(self) -> bool:
        return os.geteuid() == 0

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` run as this account (``setpriv``; no login shell, no PAM, the environment kept)."""
        if not self.dropping:
            return argv
        setpriv = need_program("setpriv", "util-linux")
        return [setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--", *argv]

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` in a forked child running as this account; its result or exception comes
        back through a pipe (an exception that cannot be pickled comes back as an AssertionError with its text)."""
        if not self.dropping:
            return function(*args, **kwargs)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns into pytest
            os.close(read_end)
            try:
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
                outcome: tuple[bool, Any] = (True, function(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
                outcome = (False, exc)
            try:
                payload = pickle.dumps(outcome)
            except Exception:  # noqa: BLE001
                payload = pickle.dumps((False, AssertionError(f"{type(outcome[1]).__name__}: {outcome[1]}")))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert payload, f"the child running as {self.name} died (wait status {status})"
        ok, value = pickle.loads(payload)
        if ok:
            return value  # type: ignore[no-any-return]
        raise value


def _ensure_account(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        useradd = need_program("useradd", "passwd")
        subprocess.run([useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def unprivileged_account(tmp_path: Path) -> Iterator[Unprivileged]:
    """The account (created on first use when running as root) and a private folder it owns."""
    if os.geteuid() != 0:
        yield Unprivileged(pwd.getpwuid(os.getuid()).pw_name, os.getuid(), os.getgid(), tmp_path)
        return
    entry = _ensure_account(UNPRIVILEGED_NAME)
    folder = Path(tempfile.mkdtemp(prefix="gatekeeper-unprivileged-"))  # /tmp is world-traversable
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    try:
        yield Unprivileged(entry.pw_name, entry.pw_uid, entry.pw_gid, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
