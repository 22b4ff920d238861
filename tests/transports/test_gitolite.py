"""gitolite (Debian's gitolite3) in front of the gate: pushes over SSH, gitolite names the pusher from the key
(``GL_USER``), the gate decides and records under that name."""

from __future__ import annotations

from transports.transportlib import SSHServer


def test_gitolite_names_the_pusher_and_the_gate_decides(gitolite_server: SSHServer) -> None:
    srv = gitolite_server.server
    c = gitolite_server.clone("alice", url=gitolite_server.url("llama-train"))
    c.write("models/llama/modeling.py", "class Llama:\n    layers = 99\n")
    sha = c.commit("deeper")
    before = srv.ref("refs/heads/main")
    refused = c.push()
    assert not refused.ok
    assert "approval" in refused.remote, refused.output
    assert srv.ref("refs/heads/main") == before
    feature = c.push("HEAD:refs/heads/feature")
    assert feature.ok, feature.output
    assert srv.ref("refs/heads/feature") == sha
    denied, allowed = srv.decisions()[-2:]
    for decision in (denied, allowed):
        assert decision["pusher"] == {"user": "alice", "source": "gitolite:GL_USER", "deploy_key": False}
        assert decision["platform"] == "gitolite"
    assert denied["decision"] == "deny" and allowed["decision"] == "allow"


def test_a_client_sent_gl_user_does_not_change_who_pushes(gitolite_server: SSHServer) -> None:
    # sshd accepts GL_* from clients here (AcceptEnv); gitolite-shell sets GL_USER from the key, so mallory's claim to
    # be dave (who may break glass) changes nothing.
    srv = gitolite_server.server
    ssh = gitolite_server.ssh_command("alice", "-o", "SetEnv=GL_USER=dave")
    c = gitolite_server.clone("alice", url=gitolite_server.url("llama-train"))
    c.git("config", "core.sshCommand", ssh)
    c.write("models/llama/modeling.py", "hotfix\n")
    c.commit("hotfix")
    before = srv.ref("refs/heads/main")
    result = c.push(options=["gatekeeper.break-glass=prod down"])
    assert not result.ok
    assert "break-glass refused: alice is not in the policy's break_glass list" in result.remote, result.output
    assert srv.ref("refs/heads/main") == before
    assert srv.decisions()[-1]["pusher"]["user"] == "alice"


def test_gitolite_refuses_a_reader_before_the_gate_runs(gitolite_server: SSHServer) -> None:
    srv = gitolite_server.server
    c = gitolite_server.clone("carol", url=gitolite_server.url("llama-train"))  # R access: clone works
    c.write("src/train.py", "print('carol')\n")
    c.commit("carol's change")
    records = len(srv.records())
    result = c.push("HEAD:refs/heads/carol")
    assert not result.ok
    assert "W any llama-train carol DENIED" in result.output, result.output
    assert srv.ref("refs/heads/carol") is None
    assert len(srv.records()) == records  # gitolite stopped it; the gate never ran
