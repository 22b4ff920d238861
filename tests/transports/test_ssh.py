"""Pushing through a real OpenSSH server whose keys carry ``gatekeeper ssh-command PERSON`` forced commands: the key
decides who is recorded and gated, nothing the client says does, and the forced command runs git and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitserver import Clone, run_git
from transports.transportlib import SSHServer

pytestmark = pytest.mark.transport


def _protected_change(server: SSHServer, person: str) -> tuple[Clone, str]:
    clone = server.clone(person)
    clone.write("models/llama/modeling.py", f"class Llama:\n    by = {person!r}\n")
    return clone, clone.commit(f"{person} edits the model")


def test_key_decides_identity_gating_and_audit(ssh_server: SSHServer) -> None:
    srv = ssh_server.server
    before = srv.ref("refs/heads/main")

    carol, _ = _protected_change(ssh_server, "carol")
    refused = carol.push()
    assert not refused.ok
    assert "gatekeeper: push REFUSED" in refused.remote
    assert "rule model-code needs 1 approval from ml-leads" in refused.remote
    assert srv.ref("refs/heads/main") == before
    decision = srv.decisions()[-1]
    assert decision["pusher"] == {"user": "carol", "source": "ssh:GATEKEEPER_USER", "deploy_key": False}
    assert decision["protocol"] == "ssh"
    assert decision["decision"] == "deny"

    bob = ssh_server.clone("bob")
    bob.write("src/train.py", "print('bob')\n")
    sha = bob.commit("bob edits an unprotected file")
    landed = bob.push()
    assert landed.ok, landed.output
    assert srv.ref("refs/heads/main") == sha
    decision = srv.decisions()[-1]
    assert decision["pusher"]["user"] == "bob"  # type: ignore[index]
    assert decision["pusher"]["source"] == "ssh:GATEKEEPER_USER"  # type: ignore[index]
    assert decision["decision"] == "allow"


def test_break_glass_follows_the_key_not_the_client(ssh_server: SSHServer) -> None:
    """carol's key, with every identity variable the server's careless AcceptEnv lets through set to dave's name."""
    srv = ssh_server.server
    carol, _ = _protected_change(ssh_server, "carol")
    spoof = "SetEnv=GATEKEEPER_USER=dave GL_USERNAME=dave GL_USER=dave GITEA_PUSHER_NAME=dave REMOTE_USER=dave"
    # The careless AcceptEnv really delivers them (a key whose forced command is `env` shows it) ...
    probe = ssh_server.run("envprobe", None, "-o", spoof)
    assert "GL_USERNAME=dave" in probe.stdout and "GATEKEEPER_USER=dave" in probe.stdout, probe.stdout + probe.stderr
    # ... and the forced command drops them before git runs.
    carol.git("config", "core.sshCommand", ssh_server.ssh_command("carol", "-o", spoof))
    refused = carol.push(options=["gatekeeper.break-glass=prod down"])
    assert not refused.ok
    assert "break-glass refused" in refused.remote
    decision = srv.decisions()[-1]
    assert decision["pusher"]["user"] == "carol"  # type: ignore[index]
    assert decision["pusher"]["source"] == "ssh:GATEKEEPER_USER"  # type: ignore[index]

    dave, sha = _protected_change(ssh_server, "dave")
    landed = dave.push(options=["gatekeeper.break-glass=prod down, INC-1"])
    assert landed.ok, landed.output
    assert "BREAK-GLASS push by dave" in landed.remote
    assert srv.ref("refs/heads/main") == sha
    decision = srv.decisions()[-1]
    assert decision["decision"] == "break-glass"
    assert decision["break_glass"] == {"by": "dave", "reason": "prod down, INC-1"}
    assert decision["pusher"]["source"] == "ssh:GATEKEEPER_USER"  # type: ignore[index]


def test_absolute_ssh_url_inside_the_root_works(ssh_server: SSHServer) -> None:
    url = f"ssh://root@127.0.0.1:{ssh_server.port}{ssh_server.server.bare}"
    bob = ssh_server.clone("bob", "bob-abs", url=url)
    bob.write("docs/x.md", "x\n")
    assert bob.push().ok


REFUSED = [
    (None, "interactive logins are not allowed here"),
    ("id", "command not allowed: 'id'"),
    ("sh -c id", "command not allowed"),
    ("git-receive-pack 'llama-train.git'; id", "command not allowed"),
    ("git-receive-pack 'llama-train.git;id'", "no repository 'llama-train.git;id' here"),
    ("git-upload-pack '--help'", "repository path not allowed: '--help'"),
    ("git-upload-pack '../srv/llama-train.git'", "repository path not allowed"),
    ("git-upload-pack '/etc'", "no repository '/etc' here"),
    ("git-upload-archive 'llama-train.git'", "command not allowed"),
    ("git-receive-pack 'llama-train.git' extra", "command not allowed"),
]


def test_forced_command_runs_git_only(ssh_server: SSHServer) -> None:
    for command, message in REFUSED:
        proc = ssh_server.run("carol", command)
        assert proc.returncode == 1, (command, proc.stdout + proc.stderr)
        assert message in proc.stderr, (command, proc.stderr)
        assert proc.stdout == ""


def test_symlink_out_of_the_root_and_ungated_repositories_are_refused(ssh_server: SSHServer, tmp_path: Path) -> None:
    outside = tmp_path / "outside.git"
    run_git("init", "-q", "--bare", str(outside))
    (ssh_server.repos / "escape.git").symlink_to(outside)
    proc = ssh_server.run("bob", "git-upload-pack 'escape.git'")
    assert proc.returncode == 1 and "no repository 'escape.git' here" in proc.stderr

    ungated = ssh_server.repos / "ungated.git"
    run_git("init", "-q", "--bare", str(ungated))
    proc = ssh_server.run("bob", "git-receive-pack 'ungated.git'")
    assert proc.returncode == 1
    assert "has no gatekeeper pre-receive hook" in proc.stderr


def test_read_only_key_fetches_but_cannot_push(ssh_server: SSHServer) -> None:
    reader = ssh_server.clone("reader")
    assert (reader.path / "models" / "llama" / "modeling.py").is_file()
    reader.write("src/x.py", "1\n")
    reader.commit("x")
    result = reader.push()
    assert not result.ok
    assert "bob may fetch but not push here" in result.output
