"""Shared helpers of the trust-sync tests."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gatekeeper.hosting import trustsync

from .conftest import Keys, gitea_key, gitlab_key
from .fakeforge import FakeForge

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
FAST = trustsync.HttpSettings(connect_timeout=2.0, read_timeout=2.0, retries=2, backoff=0.01, deadline=20.0)
TOKEN = "glpat-SECRET-token-1234"


def run_sync(etc: Path, forge: FakeForge, **kwargs: Any) -> tuple[int, str]:
    out = io.StringIO()
    kwargs.setdefault("settings", FAST)
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("token_file", etc / "token")
    code = trustsync.sync(kind=forge.kind, url=forge.url, config=etc / "policy.yaml", env={}, out=out, **kwargs)
    return code, out.getvalue()


def gitlab_world(forge: FakeForge, keys: Keys) -> None:
    """alice: two accounts, keys over three pages (signing, auth-only, expiring, expired); Bob (name case differs);
    carol: an auth-only key; dave's account dave.d does not exist."""
    forge.add_user("alice", [
        gitlab_key(1, keys.pub("alice1"), "signing"),
        gitlab_key(2, keys.pub("alice-ci"), "auth", title="ci runner"),
        gitlab_key(3, keys.pub("alice2"), "auth_and_signing", expires="2027-03-01T00:00:00.000Z"),
        gitlab_key(4, keys.pub("alice-old"), "signing", expires="2026-01-01T00:00:00.000Z"),
        gitlab_key(5, keys.pub("alice3"), "signing", title="yubikey"),
    ])
    forge.add_user("alice-admin", [gitlab_key(6, keys.pub("alice-admin"), "signing")])
    forge.add_user("Bob", [gitlab_key(7, keys.pub("bob"))])
    forge.add_user("carol", [gitlab_key(8, keys.pub("carol"), "auth")])


def gitea_world(forge: FakeForge, keys: Keys) -> None:
    """alice: user keys over three pages, plus a deploy and a principal entry; bob may not log in; carol has no
    keys; alice-admin and dave.d do not exist."""
    forge.add_user("alice", [
        gitea_key(1, keys.pub("alice1"), owner="Alice"),
        gitea_key(2, keys.pub("alice-deploy"), key_type="deploy"),
        gitea_key(3, "alice@example.com", key_type="principal"),
        gitea_key(4, keys.pub("alice2")),
        gitea_key(5, keys.pub("alice3")),
    ])
    forge.add_user("bob", [gitea_key(6, keys.pub("bob"))], prohibit_login=True)
    forge.add_user("carol", [])


def key_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def signed_line(person: str, pub: str, namespace: str, valid_before: str | None = None) -> str:
    options = f'namespaces="{namespace}"' + (f',valid-before="{valid_before}"' if valid_before else "")
    return f"{person} {options} {' '.join(pub.split()[:2])}"
