"""End to end against a local fake GitLab / Gitea: the file written, the report, pagination, and that a signature
made by ``ssh-keygen -Y sign`` with a synced key verifies through the written trust store."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gatekeeper.trust.allowed_signers import AllowedSigners, lint_allowed_signers
from gatekeeper.errors import UntrustedSignature
from gatekeeper.policy.config import lint_policy

from .conftest import NAMESPACE, Keys
from .fakeforge import FakeForge
from .helpers import NOW, TOKEN, gitea_world, gitlab_world, key_lines, run_sync, signed_line


def _sign(keys: Keys, name: str, message: bytes, namespace: str = NAMESPACE) -> bytes:
    return subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(keys.path(name)), "-n", namespace],
                          input=message, capture_output=True, check=True).stdout


def test_gitlab_sync_writes_a_trust_store_the_gate_accepts(etc: Path, gitlab: FakeForge, keys: Keys) -> None:
    gitlab_world(gitlab, keys)
    code, out = run_sync(etc, gitlab)
    target = etc / "allowed_signers"
    assert code == 4  # written, but carol and dave cannot approve
    assert lint_allowed_signers(target) == []
    assert sorted(key_lines(target)) == sorted([
        signed_line("alice", keys.pub("alice1"), NAMESPACE),
        signed_line("alice", keys.pub("alice2"), NAMESPACE, "20270228235959Z"),
        signed_line("alice", keys.pub("alice3"), NAMESPACE),
        signed_line("alice", keys.pub("alice-admin"), NAMESPACE),
        signed_line("bob", keys.pub("bob"), NAMESPACE),
    ])
    assert stat_mode(target) == 0o644
    assert (etc / "allowed_signers.prev").read_bytes() == b""
    # `gatekeeper policy lint` agrees: no errors, and exactly the two people without a key are warned about.
    problems = lint_policy(etc / "policy.yaml")
    assert [p.message for p in problems if p.is_error] == []
    assert sorted(p.message for p in problems if str(target) == p.file) == [
        "person 'carol' has no key in this file and cannot approve",
        "person 'dave' has no key in this file and cannot approve",
    ]
    lines = out.splitlines()
    assert lines[0] == f"trust sync from gitlab {gitlab.url}: 5 keys for 2 of 4 people"
    assert "  alice: 4 keys" in lines and "  bob: 1 key" in lines
    alice2 = next(k.key.fingerprint for k in AllowedSigners.load(target).entries if k.valid_before is not None)
    assert f"    {alice2} (ssh-ed25519, user alice, key 3, valid until 2027-02-28T23:59:59Z)" in lines
    assert "people without a signing key (2; they cannot approve):" in lines
    assert "  carol: gitlab user 'carol' has no signing key (1 key skipped)" in lines
    assert "  dave: gitlab user 'dave.d': no such user" in lines
    assert "skipped keys (3):" in lines
    assert "  alice (alice) key 2 \"ci runner\": usage_type 'auth' is not for signing" in lines
    assert "  alice (alice) key 4 \"laptop\": expired at 2026-01-01T00:00:00Z" in lines
    assert "  carol (carol) key 8 \"laptop\": usage_type 'auth' is not for signing" in lines
    assert lines[-1] == f"wrote {target} (5 keys; previous kept as {target}.prev)"
    # Pagination: alice's five keys came in three pages of two (the server's cap), following X-Next-Page.
    alice_id = gitlab.users["alice"]["id"]
    assert [s.query["page"] for s in gitlab.requests_to(f"/api/v4/users/{alice_id}/keys")] == ["1", "2", "3"]
    assert {s.headers.get("PRIVATE-TOKEN") for s in gitlab.seen} == {TOKEN}
    assert TOKEN not in out


def test_a_synced_key_verifies_through_the_written_file(etc: Path, gitlab: FakeForge, keys: Keys) -> None:
    gitlab_world(gitlab, keys)
    run_sync(etc, gitlab)
    target = etc / "allowed_signers"
    store = AllowedSigners.load(target)
    message = b"approve models/** at abc\n"
    sig = _sign(keys, "alice2", message)
    assert store.verify(sig, message, namespace=NAMESPACE, now=NOW).principals == ("alice",)
    # GitLab's expires_at is honoured to the second: the key counts until just before it, not at it.
    last = datetime(2027, 2, 28, 23, 59, 59, 999999, tzinfo=timezone.utc)
    assert store.verify(sig, message, namespace=NAMESPACE, now=last).principals == ("alice",)
    expired = datetime(2027, 3, 1, 0, 0, 0, tzinfo=timezone.utc)
    with pytest.raises(UntrustedSignature, match="valid only until 2027-02-28T23:59:59Z"):
        store.verify(sig, message, namespace=NAMESPACE, now=expired)
    # Stock ssh-keygen agrees (the oracle), under a non-UTC zone too: the Z makes the bound unambiguous.
    proc = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(target), "-I", "alice", "-n", NAMESPACE, "-s",
                           str(_write(etc / "msg.sig", sig))], input=message, capture_output=True,
                          env={**os.environ, "TZ": "America/New_York"})
    assert proc.returncode == 0, proc.stderr
    assert b'Good "approvals@test.example" signature for alice' in proc.stdout
    # The auth-only key was not synced: its signature is untrusted.
    ci_sig = _sign(keys, "alice-ci", message)
    with pytest.raises(UntrustedSignature, match="is not in allowed_signers"):
        store.verify(ci_sig, message, namespace=NAMESPACE, now=NOW)


def test_gitea_sync_user_keys_only_over_pages(etc: Path, gitea: FakeForge, keys: Keys) -> None:
    gitea_world(gitea, keys)
    code, out = run_sync(etc, gitea)
    target = etc / "allowed_signers"
    assert code == 4
    assert lint_allowed_signers(target) == []
    assert sorted(key_lines(target)) == sorted(
        signed_line("alice", keys.pub(name), NAMESPACE) for name in ("alice1", "alice2", "alice3"))
    lines = out.splitlines()
    assert lines[0] == f"trust sync from gitea {gitea.url}: 3 keys for 1 of 4 people"
    assert "  alice (alice) key 2 \"laptop\": key_type 'deploy' is not a user key" in lines
    assert "  alice (alice) key 3 \"laptop\": key_type 'principal' is not a user key" in lines
    assert "  bob: gitea user 'bob': the user may not log in (prohibit_login)" in lines
    assert "  carol: gitea user 'carol' has no signing key" in lines
    assert "  dave: gitea user 'dave.d': no such user" in lines
    assert lines[lines.index("accounts that gave no key (1):") + 1] == "  alice: gitea user 'alice-admin': no such user"
    assert [s.query["page"] for s in gitea.requests_to("/api/v1/users/alice/keys")] == ["1", "2", "3"]
    assert {s.query["limit"] for s in gitea.requests_to("/api/v1/users/alice/keys")} == {"50"}
    assert {s.headers.get("Authorization") for s in gitea.seen} == {f"token {TOKEN}"}
    sig = _sign(keys, "alice3", b"m")
    assert AllowedSigners.load(target).verify(sig, b"m", namespace=NAMESPACE, now=NOW).principals == ("alice",)


def test_gitea_without_total_count_pages_until_empty(etc: Path, gitea: FakeForge, keys: Keys) -> None:
    gitea_world(gitea, keys)
    gitea.send_pagination_headers = False
    code, _ = run_sync(etc, gitea)
    assert code == 4
    assert len(key_lines(etc / "allowed_signers")) == 3
    assert [s.query["page"] for s in gitea.requests_to("/api/v1/users/alice/keys")] == ["1", "2", "3", "4"]


def test_gitlab_without_pagination_headers_pages_until_short(etc: Path, gitlab: FakeForge, keys: Keys) -> None:
    gitlab_world(gitlab, keys)
    gitlab.send_pagination_headers = False
    gitlab.page_cap = 100
    code, _ = run_sync(etc, gitlab)
    assert code == 4
    assert len(key_lines(etc / "allowed_signers")) == 5


def test_everyone_keyed_exits_0_and_a_second_run_changes_nothing(etc: Path, gitlab: FakeForge, keys: Keys) -> None:
    for name in ("alice", "bob", "carol", "dave.d"):
        gitlab.add_user(name, [{"id": len(name), "title": "k", "created_at": "2026-01-01T00:00:00Z",
                                "expires_at": None, "key": keys.pub(f"solo-{name}"), "usage_type": "signing"}])
    code, out = run_sync(etc, gitlab)
    assert code == 0, out
    target = etc / "allowed_signers"
    first = target.read_bytes()
    prev_stat = os.stat(etc / "allowed_signers.prev")
    code, out = run_sync(etc, gitlab)
    assert code == 0
    assert out.splitlines()[-1] == f"{target} is up to date"
    assert target.read_bytes() == first
    assert os.stat(etc / "allowed_signers.prev").st_mtime_ns == prev_stat.st_mtime_ns  # not rotated again
    assert "dave" in {line.split()[0] for line in key_lines(target)}  # the person's name, not the account dave.d


def test_dry_run_shows_the_diff_and_writes_nothing(etc: Path, gitlab: FakeForge, keys: Keys) -> None:
    gitlab_world(gitlab, keys)
    code, out = run_sync(etc, gitlab, dry_run=True)
    assert code == 4
    assert (etc / "allowed_signers").read_bytes() == b""
    assert not (etc / "allowed_signers.prev").exists()
    assert f"--- {etc / 'allowed_signers'} (current)" in out
    assert "+" + signed_line("bob", keys.pub("bob"), NAMESPACE) in out.splitlines()
    assert out.splitlines()[-1] == "dry run: nothing written"


def test_umask_does_not_decide_the_mode(etc: Path, gitlab: FakeForge, keys: Keys) -> None:
    gitlab_world(gitlab, keys)
    old = os.umask(0o077)
    try:
        run_sync(etc, gitlab)
    finally:
        os.umask(old)
    assert stat_mode(etc / "allowed_signers") == 0o644
    assert stat_mode(etc / "allowed_signers.prev") == 0o644
    assert sorted(p.name for p in etc.iterdir() if p.name.startswith(".")) == []  # no temp files left


def stat_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
