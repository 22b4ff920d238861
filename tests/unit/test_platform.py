from __future__ import annotations

import pytest

from gatekeeper.errors import InputError
from gatekeeper.push.platform import detect_context, message_prefix


def test_gitlab() -> None:
    ctx = detect_context({"GL_USERNAME": "alice", "GL_ID": "user-1", "GL_PROTOCOL": "web",
                          "GL_PROJECT_PATH": "ml/llama"})
    assert (ctx.platform, ctx.identity.user, ctx.protocol, ctx.repository, ctx.web_operation) == (
        "gitlab", "alice", "web", "ml/llama", True)
    assert message_prefix(ctx.platform) == "GL-HOOK-ERR: "


def test_gitea_user_and_deploy_key() -> None:
    env = {"GITEA_PUSHER_NAME": "bob", "GITEA_REPO_USER_NAME": "ml", "GITEA_REPO_NAME": "llama",
           "SSH_ORIGINAL_COMMAND": "git-receive-pack 'ml/llama.git'", "GITEA_DEPLOY_KEY_ID": "0"}
    ctx = detect_context(env)
    assert (ctx.identity.user, ctx.identity.is_deploy_key, ctx.repository, ctx.protocol) == (
        "bob", False, "ml/llama", "ssh")
    ctx = detect_context({**env, "GITEA_DEPLOY_KEY_ID": "5"})
    assert ctx.identity.user == "deploy-key:5" and ctx.identity.is_deploy_key
    web = detect_context({**env, "SSH_ORIGINAL_COMMAND": "gitea-internal", "GITEA_PUSH_TRIGGER": "pr-merge-to-base"})
    assert web.protocol == "web" and web.web_operation


def test_gitolite_http_ssh_plain() -> None:
    assert detect_context({"GL_USER": "carol", "GL_REPO": "x"}).identity.source == "gitolite:GL_USER"
    assert detect_context({"REMOTE_USER": "dan"}).identity.source == "http:REMOTE_USER"
    assert detect_context({"GATEKEEPER_USER": "eve"}).identity.source == "ssh:GATEKEEPER_USER"
    assert detect_context({}).identity.source == "os:getuid"


def test_platform_precedence_is_the_strongest_source() -> None:
    # A GitLab server also has REMOTE_USER-like noise; the platform variable wins.
    ctx = detect_context({"GL_USERNAME": "alice", "REMOTE_USER": "mallory", "GATEKEEPER_USER": "mallory"})
    assert ctx.identity.user == "alice"


@pytest.mark.parametrize("platform", ["gitlab", "gitea", "gitolite", "http", "ssh"])
def test_pinned_platform_without_its_variable_fails_closed(platform: str) -> None:
    with pytest.raises(InputError, match="pinned"):
        detect_context({"REMOTE_USER": "x"} if platform != "http" else {"GL_USERNAME": "y"}, platform=platform)


def test_empty_identity_is_not_an_identity() -> None:
    with pytest.raises(InputError):
        detect_context({"GL_USERNAME": "  "}, platform="gitlab")


def test_unknown_platform() -> None:
    with pytest.raises(InputError, match="unknown platform"):
        detect_context({}, platform="bitbucket")
