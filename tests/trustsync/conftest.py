"""Fixtures for the trust-sync tests: real ssh-keygen keys (made once per session), a policy, a fake forge."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fakeforge import FakeForge, serve

POLICY = """\
version: 1
protected_refs: [refs/heads/main]
rules:
  - name: models
    paths: ["models/**"]
    approvals: 1
    reviewers: [alice, bob]
people:
  alice: {{accounts: [alice, alice-admin]}}
  bob: {{emails: [bob@example.com]}}
  carol: {{}}
  dave: {{accounts: [dave.d]}}
trust:
  allowed_signers: allowed_signers
  namespace: {namespace}
audit:
  log: audit/audit.jsonl
"""
NAMESPACE = "approvals@test.example"


class Keys:
    """ed25519 key pairs by name; ``pub(name)`` is the ``TYPE BASE64 COMMENT`` line."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        key = self.root / name
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@laptop", "-f", str(key)],
                           check=True)
        return key

    def pub(self, name: str) -> str:
        return self.path(name).with_name(name + ".pub").read_text().strip()

    def b64(self, name: str) -> str:
        return self.pub(name).split()[1]


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    directory = tmp_path / "etc"
    (directory / "audit").mkdir(parents=True)
    (directory / "policy.yaml").write_text(POLICY.format(namespace=NAMESPACE))
    (directory / "allowed_signers").write_text("")
    (directory / "token").write_text("glpat-SECRET-token-1234\n")
    return directory


def gitlab_key(key_id: int, text: str, usage: str | None = "auth_and_signing", expires: str | None = None,
               title: str = "laptop") -> dict[str, object]:
    item: dict[str, object] = {"id": key_id, "title": title, "created_at": "2026-01-01T10:00:00.000Z",
                               "expires_at": expires, "key": text}
    if usage is not None:
        item["usage_type"] = usage
    return item


def gitea_key(key_id: int, text: str, key_type: str = "user", title: str = "laptop",
              owner: str | None = None) -> dict[str, object]:
    item: dict[str, object] = {
        "id": key_id, "key": text, "url": f"https://gitea.example/api/v1/user/keys/{key_id}", "title": title,
        "fingerprint": "SHA256:x", "created_at": "2026-01-01T10:00:00Z", "read_only": key_type == "deploy",
        "key_type": key_type}
    if owner is not None:
        item["user"] = {"id": 1, "login": owner, "full_name": ""}
    return item


@pytest.fixture
def gitlab() -> Iterator[FakeForge]:
    with serve(FakeForge("gitlab")) as forge:
        yield forge


@pytest.fixture
def gitea() -> Iterator[FakeForge]:
    with serve(FakeForge("gitea")) as forge:
        yield forge
