"""Pushing through Apache and ``git http-backend`` behind basic authentication: the web server's ``REMOTE_USER`` is
who is recorded and gated."""

from __future__ import annotations

import pytest

from transports.transportlib import HTTPServer

pytestmark = pytest.mark.transport


def test_authenticated_user_decides_identity_gating_and_audit(http_server: HTTPServer) -> None:
    srv = http_server.server
    before = srv.ref("refs/heads/main")

    carol = http_server.clone("carol")
    carol.write("models/llama/modeling.py", "class Llama:\n    by = 'carol'\n")
    carol.commit("carol edits the model")
    refused = carol.push(options=["gatekeeper.break-glass=prod down"])
    assert not refused.ok
    assert "gatekeeper: push REFUSED" in refused.remote
    assert "break-glass refused" in refused.remote
    assert srv.ref("refs/heads/main") == before
    decision = srv.decisions()[-1]
    assert decision["pusher"] == {"user": "carol", "source": "http:REMOTE_USER", "deploy_key": False}
    assert decision["protocol"] == "http"
    assert decision["decision"] == "deny"

    bob = http_server.clone("bob")
    bob.write("src/train.py", "print('bob')\n")
    sha = bob.commit("bob edits an unprotected file")
    landed = bob.push()
    assert landed.ok, landed.output
    assert srv.ref("refs/heads/main") == sha
    decision = srv.decisions()[-1]
    assert decision["pusher"]["user"] == "bob"  # type: ignore[index]
    assert decision["pusher"]["source"] == "http:REMOTE_USER"  # type: ignore[index]
    assert decision["decision"] == "allow"

    dave = http_server.clone("dave")
    dave.write("models/llama/modeling.py", "class Llama:\n    hotfix = True\n")
    sha = dave.commit("hotfix")
    landed = dave.push(options=["gatekeeper.break-glass=prod down, INC-2"])
    assert landed.ok, landed.output
    assert "BREAK-GLASS push by dave" in landed.remote
    assert srv.ref("refs/heads/main") == sha
    decision = srv.decisions()[-1]
    assert decision["break_glass"] == {"by": "dave", "reason": "prod down, INC-2"}
    assert decision["protocol"] == "http"


def test_wrong_or_missing_credentials_never_reach_the_repository(http_server: HTTPServer) -> None:
    srv = http_server.server
    clone = http_server.clone("bob")
    clone.write("src/x.py", "1\n")
    clone.commit("x")
    before, recorded = srv.ref("refs/heads/main"), len(srv.records())
    for url in (http_server.url("bob", "wrong"), http_server.url("mallory", "x"), http_server.url(None)):
        clone.git("remote", "set-url", "origin", url)
        result = clone.push(env={"GIT_TERMINAL_PROMPT": "0"})
        assert not result.ok
        assert "Authentication failed" in result.output or "could not read Username" in result.output, result.output
    assert srv.ref("refs/heads/main") == before
    assert len(srv.records()) == recorded


def test_client_headers_cannot_set_remote_user(http_server: HTTPServer) -> None:
    """A ``Remote-User`` header reaches CGI as ``HTTP_REMOTE_USER``, never as ``REMOTE_USER``."""
    carol = http_server.clone("carol")
    carol.write("models/llama/modeling.py", "x\n")
    carol.commit("x")
    result = carol.push(env={"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                             "GIT_CONFIG_VALUE_0": "Remote-User: dave"},
                        options=["gatekeeper.break-glass=prod down"])
    assert not result.ok
    decision = http_server.server.decisions()[-1]
    assert decision["pusher"]["user"] == "carol"  # type: ignore[index]
