"""The forced command of a plain SSH git server: establish who is pushing, then run git, nothing else.

Git over SSH says nothing about the person (docs/reference/git-and-platforms.md §8): the identity must come from the
SSH layer. One ``authorized_keys`` line per key names its person::

    restrict,command="/opt/gatekeeper/venv/bin/gatekeeper ssh-command alice --root /srv/git" ssh-ed25519 AAAA...

sshd runs that command whatever the client asked for and puts the client's request in ``SSH_ORIGINAL_COMMAND``. This
module accepts only ``git-receive-pack``/``git-upload-pack`` (or ``git receive-pack``/``git upload-pack``) of one
repository under ``--root``, sets ``GATEKEEPER_USER`` (what ``platform: ssh`` reads) and execs ``git`` with an argument
vector, never a shell: a hostile request cannot inject options, commands or a path outside the root. It also drops
every other variable the platform module or git would read from the client side (``AcceptEnv`` may let clients set
some), so a client cannot claim another platform's identity.

Why not ``environment="GATEKEEPER_USER=alice"``: it needs ``PermitUserEnvironment yes``, which also lets every user
with write access to their ``~/.ssh`` set ``LD_PRELOAD`` for their own sessions, and it restricts nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.errors import GatekeeperError

# The same names the policy accepts for people (gatekeeper/policy/config.py _NAME_RE).
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}\Z")
MAX_COMMAND = 4096
SERVICES = {"git-receive-pack": "receive-pack", "git-upload-pack": "upload-pack"}
# Kept from sshd's environment: everything else a client might have smuggled in through AcceptEnv goes.
_KEEP = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ", "MAIL", "TMPDIR",
         "SSH_CONNECTION", "SSH_CLIENT", "SSH_ORIGINAL_COMMAND", "GIT_PROTOCOL")


class SSHCommandError(GatekeeperError):
    """The SSH client asked for something the forced command does not run."""


@dataclass(frozen=True)
class GitCommand:
    """What will run: ``git <service> <repository>`` as ``user``."""

    user: str
    service: str  # receive-pack | upload-pack
    repository: Path


def parse(original: str | None, *, user: str, roots: tuple[Path, ...], require_gate: bool = True,
          read_only: bool = False) -> GitCommand:
    """Validate ``SSH_ORIGINAL_COMMAND`` against the forced command's settings. Raises SSHCommandError."""
    if not _USER_RE.match(user):
        raise SSHCommandError(
            f"ssh-command: invalid user name {user!r}",
            hint="the authorized_keys line must name a person as the policy does (letters, digits, '._@+-')",
        )
    if not roots:
        raise SSHCommandError("ssh-command: no --root given", hint="add --root DIR to the forced command")
    if not original:
        raise SSHCommandError(
            "interactive logins are not allowed here; this key may only push and fetch with git",
            hint="git clone ssh://host/REPO.git",
        )
    if len(original) > MAX_COMMAND or any(ord(c) < 32 or ord(c) == 127 for c in original):
        raise SSHCommandError("ssh-command: malformed command (too long or control characters)", hint="")
    try:
        words = shlex.split(original)
    except ValueError as exc:
        raise SSHCommandError(f"ssh-command: malformed command: {exc}", hint="") from None
    if len(words) == 3 and words[0] == "git":
        words = [f"git-{words[1]}", words[2]]
    if len(words) != 2 or words[0] not in SERVICES:
        raise SSHCommandError(
            f"ssh-command: command not allowed: {original[:200]!r}",
            hint="only git-receive-pack and git-upload-pack of one repository are allowed",
        )
    service = SERVICES[words[0]]
    if read_only and service == "receive-pack":
        raise SSHCommandError(f"ssh-command: {user} may fetch but not push here", hint="ask an admin for push access")
    repository = resolve_repository(words[1], roots)
    if require_gate and service == "receive-pack":
        from gatekeeper.hosting.install import is_ours

        if not is_ours(repository / "hooks" / "pre-receive"):
            raise SSHCommandError(
                f"ssh-command: push refused: {repository} has no gatekeeper pre-receive hook",
                hint="an admin must run: gatekeeper install REPO --config POLICY",
            )
    return GitCommand(user=user, service=service, repository=repository)


def resolve_repository(requested: str, roots: tuple[Path, ...]) -> Path:
    """The bare repository a client names, which must lie (after symlinks) inside one of ``roots``.

    ``ssh://host/srv/git/x.git`` arrives as ``/srv/git/x.git``, ``host:x.git`` as ``x.git`` (relative to the first
    root); ``.git`` is appended when the name lacks it, as git's own ``enter_repo`` does."""
    if not requested or requested.startswith(("-", "~")) or "\\" in requested:
        raise SSHCommandError(f"ssh-command: repository path not allowed: {requested!r}", hint="")
    if ".." in requested.split("/"):
        raise SSHCommandError(f"ssh-command: repository path not allowed: {requested!r}", hint="no '..' in paths")
    real_roots = [root.resolve() for root in roots]
    base = Path(requested) if requested.startswith("/") else real_roots[0] / requested
    candidates = (base, base.with_name(base.name + ".git")) if base.name else (base,)
    for candidate in candidates:
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        inside = any(real == root or root in real.parents for root in real_roots)
        if inside and (real / "HEAD").is_file() and (real / "objects").is_dir():
            return real
    raise SSHCommandError(
        f"ssh-command: no repository {requested!r} here",
        hint="repositories are bare repositories under " + ", ".join(str(r) for r in roots),
    )


def git_environment(env: Mapping[str, str], user: str) -> dict[str, str]:
    """sshd's environment reduced to what git needs, plus the identity."""
    clean = {name: env[name] for name in _KEEP if name in env}
    clean.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    clean["GATEKEEPER_USER"] = user
    return clean


def exec_git(command: GitCommand, env: Mapping[str, str], *, git: str | None = None) -> None:
    """Replace this process with ``git <service> <repository>`` (never returns)."""
    clean = git_environment(env, command.user)
    binary = git or shutil.which("git", path=clean["PATH"])
    if not binary:
        raise SSHCommandError("ssh-command: git is not installed on this server", hint="install git")
    os.execve(binary, [binary, command.service, str(command.repository)], clean)
