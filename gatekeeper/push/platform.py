"""Who is pushing, over what, to which repository: read from the hosting platform's variables. The only module that
reads platform variables (``GL_*``, ``GITEA_*``, ``REMOTE_USER``, ``SSH_*``, ``GATEKEEPER_USER``).

Identity always comes from the server's authentication layer, never from commits or push options:

=========  ==========================================================================================================
platform   variables (see docs/reference/git-and-platforms.md §8-§10)
=========  ==========================================================================================================
gitlab     ``GL_USERNAME`` (+ ``GL_ID``, ``GL_PROTOCOL`` = ssh/http/web, ``GL_PROJECT_PATH``)
gitea      ``GITEA_PUSHER_NAME`` (+ ``GITEA_REPO_USER_NAME``/``GITEA_REPO_NAME``); ``GITEA_DEPLOY_KEY_ID`` != 0 means a
           deploy key, which Gitea reports as the repository owner: it becomes its own identity ``deploy-key:<id>``
gitolite   ``GL_USER`` (+ ``GL_REPO``)
http       ``REMOTE_USER`` set by the web server's authentication in front of ``git http-backend``
ssh        ``GATEKEEPER_USER`` set by an ``authorized_keys`` forced command / ``environment=`` (git itself says nothing)
plain      the operating-system account running receive-pack (local and file:// pushes)
=========  ==========================================================================================================

With ``platform: auto`` the first platform whose identity variable is present wins, in the order above. A pinned
platform turns a missing variable into an error (fail closed) instead of a fallback to a weaker source: a GitLab server
whose ``GL_USERNAME`` went missing (it has happened, gitlab#299431) must not suddenly gate pushes as the ``git`` user.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass

from gatekeeper.errors import InputError
from gatekeeper.model import Identity

PLATFORMS = ("auto", "gitlab", "gitea", "gitolite", "http", "ssh", "plain")
# Variables only GitLab's Gitaly sets for custom hooks (gitolite's are GL_USER and GL_REPO).
GITLAB_MARKERS = ("GL_ID", "GL_USERNAME", "GL_PROTOCOL", "GL_REPOSITORY", "GL_PROJECT_PATH")


@dataclass(frozen=True)
class PushContext:
    """Everything about a push that the platform tells us."""

    platform: str
    identity: Identity
    protocol: str  # ssh | http | web | local
    repository: str | None  # the platform's repository id, if it names one
    web_operation: bool  # a merge/edit done by the platform's web UI (still gated like any push)
    details: dict[str, str]


def detect_context(env: Mapping[str, str], *, platform: str = "auto") -> PushContext:
    """Establish the pushing identity from the platform's variables. Raises InputError when a pinned platform's
    variables are missing or an identity is empty."""
    if platform not in PLATFORMS:
        raise InputError(f"unknown platform {platform!r}", hint=f"use one of: {', '.join(PLATFORMS)}")
    if platform == "gitea" and not env.get("SSH_ORIGINAL_COMMAND", "").strip():
        # Gitea sets SSH_ORIGINAL_COMMAND on every push it mediates (SSH: the command, HTTP: the service, web:
        # "gitea-internal"); empty means a push straight into the repository on disk, around Gitea's permission
        # checks (Gitea's own ONLY_ALLOW_PUSH_IF_GITEA_ENVIRONMENT_SET refuses it too, cmd/hook.go).
        raise InputError(
            "platform is pinned to 'gitea' but this push did not come through Gitea (SSH_ORIGINAL_COMMAND is empty:"
            " a push straight into the repository on the server's disk)",
            hint="push through Gitea (SSH or HTTPS)",
        )
    order = ("gitlab", "gitea", "gitolite", "http", "ssh", "plain") if platform == "auto" else (platform,)
    for name in order:
        context = _READERS[name](env)
        if context is not None:
            return context
    raise InputError(
        f"platform is pinned to {platform!r} but its identity variable is missing from the hook environment",
        hint="check how the server starts git-receive-pack; the gate will not guess who is pushing",
    )


def _gitlab(env: Mapping[str, str]) -> PushContext | None:
    user = env.get("GL_USERNAME", "").strip()
    if not user:
        return None
    protocol = env.get("GL_PROTOCOL", "").strip() or "unknown"
    return PushContext(
        platform="gitlab",
        identity=Identity(user=user, source="gitlab:GL_USERNAME", extra=_pick(env, "GL_ID", "GL_REPOSITORY")),
        protocol=protocol,
        repository=env.get("GL_PROJECT_PATH") or None,
        web_operation=protocol == "web",
        details=_pick(env, "GL_ID", "GL_PROTOCOL", "GL_PROJECT_PATH", "GL_REPOSITORY"),
    )


def _gitea(env: Mapping[str, str]) -> PushContext | None:
    user = env.get("GITEA_PUSHER_NAME", "").strip()
    if not user:
        return None
    deploy_key = env.get("GITEA_DEPLOY_KEY_ID", "0").strip() or "0"
    is_deploy = deploy_key != "0"
    # A deploy key is reported as the repository owner (Gitea routers/private/serv.go "FIXME"): give it its own
    # identity so that it can never count as, or be excluded as, that person.
    identity = Identity(
        user=f"deploy-key:{deploy_key}" if is_deploy else user,
        source="gitea:GITEA_DEPLOY_KEY_ID" if is_deploy else "gitea:GITEA_PUSHER_NAME",
        is_deploy_key=is_deploy,
        extra=_pick(env, "GITEA_PUSHER_ID", "GITEA_KEY_ID"),
    )
    owner, name = env.get("GITEA_REPO_USER_NAME", ""), env.get("GITEA_REPO_NAME", "")
    trigger = env.get("GITEA_PUSH_TRIGGER", "")
    original = env.get("SSH_ORIGINAL_COMMAND", "")
    if original == "gitea-internal" or trigger:
        protocol = "web"
    elif original.startswith("git-"):
        protocol = "ssh"
    else:
        protocol = "http"
    return PushContext(
        platform="gitea",
        identity=identity,
        protocol=protocol,
        repository=f"{owner}/{name}" if owner and name else None,
        web_operation=protocol == "web",
        details=_pick(
            env, "GITEA_REPO_ID", "GITEA_PR_ID", "GITEA_PR_INDEX", "GITEA_PUSH_TRIGGER", "GITEA_INTERNAL_PUSH",
        ),
    )


def _gitolite(env: Mapping[str, str]) -> PushContext | None:
    user = env.get("GL_USER", "").strip()
    if not user:
        return None
    return PushContext(
        platform="gitolite",
        identity=Identity(user=user, source="gitolite:GL_USER"),
        protocol="http" if env.get("REMOTE_USER") else "ssh",
        repository=env.get("GL_REPO") or None,
        web_operation=False,
        details=_pick(env, "GL_REPO", "GL_TID"),
    )


def _http(env: Mapping[str, str]) -> PushContext | None:
    user = env.get("REMOTE_USER", "").strip()
    if not user:
        return None
    return PushContext(
        platform="http",
        identity=Identity(user=user, source="http:REMOTE_USER"),
        protocol="http",
        repository=None,
        web_operation=False,
        details=_pick(env, "REMOTE_ADDR", "AUTH_TYPE"),
    )


def _ssh(env: Mapping[str, str]) -> PushContext | None:
    user = env.get("GATEKEEPER_USER", "").strip()
    if not user:
        return None
    return PushContext(
        platform="ssh",
        identity=Identity(user=user, source="ssh:GATEKEEPER_USER"),
        protocol="ssh",
        repository=None,
        web_operation=False,
        details={"ssh_client": env.get("SSH_CONNECTION", "").split(" ")[0]} if env.get("SSH_CONNECTION") else {},
    )


def _plain(env: Mapping[str, str]) -> PushContext | None:
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid:{os.getuid()}"
    return PushContext(
        platform="plain",
        identity=Identity(user=user, source="os:getuid"),
        protocol="ssh" if env.get("SSH_CONNECTION") else "local",
        repository=None,
        web_operation=False,
        details={},
    )


_READERS = {
    "gitlab": _gitlab,
    "gitea": _gitea,
    "gitolite": _gitolite,
    "http": _http,
    "ssh": _ssh,
    "plain": _plain,
}


def _pick(env: Mapping[str, str], *names: str) -> dict[str, str]:
    return {name: env[name] for name in names if env.get(name)}


def message_prefix(platform: str) -> str:
    """GitLab's web UI shows only lines starting ``GL-HOOK-ERR:`` (docs/reference §10.3); git shows everything."""
    return "GL-HOOK-ERR: " if platform == "gitlab" else ""
