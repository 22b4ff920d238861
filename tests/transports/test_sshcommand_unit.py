"""``gatekeeper.hosting.sshcommand`` without a server: what the forced command accepts, resolves and passes to git."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.hosting.install import MARKER
from gatekeeper.push.platform import detect_context
from gatekeeper.hosting.sshcommand import GitCommand, SSHCommandError, git_environment, parse
from gitserver import run_git


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "git"
    for name in ("team/model.git", "plain.git"):
        run_git("init", "-q", "--bare", str(base / name))
    (base / "team" / "model.git" / "hooks" / "pre-receive").write_text(f"#!/bin/sh\n{MARKER}\n")
    return base


def _parse(command: str | None, root: Path, **kw: object) -> GitCommand:
    return parse(command, user=str(kw.pop("user", "alice")), roots=(root,), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("command", [
    "git-receive-pack 'team/model.git'",
    "git-receive-pack 'team/model'",
    "git receive-pack 'team/model.git'",
    "git-receive-pack team/model.git",
    "git-receive-pack '/{root}/team/model.git'",
    "git-receive-pack '{root}/team/model'",
])
def test_accepted_forms_resolve_to_the_repository(root: Path, command: str) -> None:
    parsed = _parse(command.format(root=root), root)
    assert parsed == GitCommand(user="alice", service="receive-pack", repository=(root / "team/model.git").resolve())


def test_quoting_as_git_sends_it(root: Path) -> None:
    weird = root / "it's!.git"
    run_git("init", "-q", "--bare", str(weird))
    # git's sq_quote: ' becomes '\'' and ! becomes '\!'
    parsed = _parse("git-upload-pack 'it'\\''s'\\!'.git'", root)
    assert parsed.repository == weird.resolve()


@pytest.mark.parametrize(("command", "message"), [
    (None, "interactive logins are not allowed here"),
    ("", "interactive logins are not allowed here"),
    ("git-upload-pack 'plain.git'\nid", "malformed command"),
    ("git-upload-pack 'plain.git\x00'", "malformed command"),
    ("git-upload-pack '" + "a" * 5000 + "'", "malformed command"),
    ("git-upload-pack 'plain.git", "malformed command: No closing quotation"),
    ("scp -t /tmp", "command not allowed"),
    ("git-upload-pack", "command not allowed"),
    ("git upload-archive 'plain.git'", "command not allowed"),
    ("git-upload-pack '--upload-pack=id'", "repository path not allowed"),
    ("git-upload-pack '~root/plain.git'", "repository path not allowed"),
    ("git-upload-pack 'team/../plain.git'", "repository path not allowed"),
    ("git-upload-pack 'a\\b'", "repository path not allowed"),
    ("git-upload-pack 'team'", "no repository 'team' here"),
    ("git-upload-pack '/'", "no repository '/' here"),
    ("git-upload-pack '.'", "no repository '.' here"),
    ("git-upload-pack ''", "repository path not allowed: ''"),
    ("git-upload-pack '/etc/passwd'", "no repository '/etc/passwd' here"),
    ("git-receive-pack 'plain.git'", "has no gatekeeper pre-receive hook"),
])
def test_refused(root: Path, command: str | None, message: str) -> None:
    with pytest.raises(SSHCommandError) as info:
        _parse(command, root)
    assert message in info.value.message


def test_absolute_path_outside_the_root_and_symlinks_out_are_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.git"
    run_git("init", "-q", "--bare", str(outside))
    with pytest.raises(SSHCommandError, match="no repository"):
        _parse(f"git-upload-pack '{outside}'", root)
    (root / "link.git").symlink_to(outside)
    with pytest.raises(SSHCommandError, match="no repository 'link.git' here"):
        _parse("git-upload-pack 'link.git'", root)


def test_read_only_and_ungated(root: Path) -> None:
    assert _parse("git-upload-pack 'plain.git'", root, read_only=True).service == "upload-pack"
    with pytest.raises(SSHCommandError, match="alice may fetch but not push here"):
        _parse("git-receive-pack 'team/model.git'", root, read_only=True)
    assert _parse("git-receive-pack 'plain.git'", root, require_gate=False).service == "receive-pack"


@pytest.mark.parametrize("user", ["", "-alice", "alice bob", "al\nice", "a" * 101, "alice;id", "ålice"])
def test_invalid_user_names(root: Path, user: str) -> None:
    with pytest.raises(SSHCommandError, match="invalid user name"):
        _parse("git-upload-pack 'plain.git'", root, user=user)


def test_environment_keeps_what_git_needs_and_only_the_key_s_identity() -> None:
    sshd = {
        "PATH": "/usr/bin:/bin", "HOME": "/home/git", "SSH_CONNECTION": "127.0.0.1 5000 127.0.0.1 22",
        "SSH_ORIGINAL_COMMAND": "git-receive-pack 'x.git'", "GIT_PROTOCOL": "version=2",
        # what a careless AcceptEnv lets a client set
        "GATEKEEPER_USER": "dave", "GL_USERNAME": "dave", "GL_USER": "dave", "GITEA_PUSHER_NAME": "dave",
        "REMOTE_USER": "dave", "GIT_DIR": "/tmp/evil", "GIT_EXEC_PATH": "/tmp/evil", "LD_PRELOAD": "/tmp/evil.so",
    }
    env = git_environment(sshd, "carol")
    assert env == {
        "PATH": "/usr/bin:/bin", "HOME": "/home/git", "SSH_CONNECTION": "127.0.0.1 5000 127.0.0.1 22",
        "SSH_ORIGINAL_COMMAND": "git-receive-pack 'x.git'", "GIT_PROTOCOL": "version=2", "GATEKEEPER_USER": "carol",
    }
    context = detect_context(env)
    assert (context.platform, context.identity.user, context.identity.source, context.protocol) == (
        "ssh", "carol", "ssh:GATEKEEPER_USER", "ssh")
    assert context.details == {"ssh_client": "127.0.0.1"}
