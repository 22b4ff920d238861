"""Fail closed: every API failure, hostile answer or dangerous result leaves the existing trust store untouched."""

from __future__ import annotations

import fcntl
import io
import os
import shutil
from pathlib import Path

import pytest
from machine import Unprivileged

from gatekeeper.hosting import trustsync
from gatekeeper.trust.allowed_signers import lint_allowed_signers
from gatekeeper.errors import ConfigError
from gatekeeper.hosting.trustsync import ForgeError, HttpSettings, TrustSyncError

from .conftest import NAMESPACE, Keys, gitlab_key
from .fakeforge import FakeForge, Fault, serve
from .helpers import FAST, TOKEN, gitlab_world, key_lines, run_sync, signed_line

PREVIOUS = b"# the trust store before the sync\n"


@pytest.fixture
def world(etc: Path, gitlab: FakeForge, keys: Keys) -> FakeForge:
    gitlab_world(gitlab, keys)
    (etc / "allowed_signers").write_bytes(PREVIOUS)
    return gitlab


def assert_untouched(etc: Path) -> None:
    assert (etc / "allowed_signers").read_bytes() == PREVIOUS
    assert not (etc / "allowed_signers.prev").exists()
    assert [p.name for p in etc.iterdir() if p.name.endswith(".tmp")] == []


def test_401_is_a_token_problem_and_writes_nothing(etc: Path, world: FakeForge) -> None:
    world.fault("/api/v4/users", Fault(status=401))
    with pytest.raises(ForgeError) as info:
        run_sync(etc, world)
    assert info.value.message == f"GET {world.url}/api/v4/users?username=alice: HTTP 401: the forge refused the token"
    assert "scope" in info.value.hint
    assert len(world.requests_to("/api/v4/users")) == 1  # a 4xx is never retried
    assert_untouched(etc)


def test_other_4xx_is_not_retried(etc: Path, world: FakeForge) -> None:
    world.fault("/api/v4/users", Fault(status=400))
    with pytest.raises(ForgeError, match="unexpected HTTP 400"):
        run_sync(etc, world)
    assert len(world.requests_to("/api/v4/users")) == 1
    assert_untouched(etc)


def test_404_for_the_keys_of_a_found_user_fails(etc: Path, world: FakeForge) -> None:
    world.fault(f"/api/v4/users/{world.users['alice']['id']}/keys", Fault(status=404))
    with pytest.raises(ForgeError, match="HTTP 404 for GitLab user 'alice' whose id was just looked up"):
        run_sync(etc, world)
    assert_untouched(etc)


def test_5xx_is_retried_then_succeeds(etc: Path, world: FakeForge) -> None:
    path = f"/api/v4/users/{world.users['alice']['id']}/keys"
    world.fault(path, Fault(status=502, times=2))
    code, _ = run_sync(etc, world)
    assert code == 4
    assert len(world.requests_to(path)) == 2 + 3  # two failures, then three pages
    assert len(key_lines(etc / "allowed_signers")) == 5


def test_429_is_retried(etc: Path, world: FakeForge) -> None:
    world.fault("/api/v4/users", Fault(status=429))
    code, _ = run_sync(etc, world)
    assert code == 4


def test_persistent_5xx_gives_up_after_the_retries(etc: Path, world: FakeForge) -> None:
    world.fault("/api/v4/users", Fault(status=500, times=-1))
    with pytest.raises(ForgeError) as info:
        run_sync(etc, world)
    assert info.value.message == (f"GET {world.url}/api/v4/users?username=alice: HTTP 500 "
                                  "(gave up after 3 attempts)")
    assert len(world.requests_to("/api/v4/users")) == 3  # FAST: 2 retries
    assert_untouched(etc)


def test_a_slow_answer_trips_the_read_timeout(etc: Path, world: FakeForge) -> None:
    world.fault("/api/v4/users", Fault(delay=1.5, times=-1))
    settings = HttpSettings(connect_timeout=1.0, read_timeout=0.3, retries=1, backoff=0.01, deadline=20.0)
    with pytest.raises(ForgeError) as info:
        run_sync(etc, world, settings=settings)
    # Without the read timeout the first answer (after 1.5 s) would have been taken: the error itself is the proof.
    assert len(world.requests_to("/api/v4/users")) == 2
    assert info.value.message == (f"GET {world.url}/api/v4/users?username=alice: no answer within 0.3 s "
                                  "(gave up after 2 attempts)")
    assert_untouched(etc)


def test_the_total_deadline_bounds_retries(etc: Path, world: FakeForge) -> None:
    world.fault("/api/v4/users", Fault(delay=0.4, status=503, times=-1))
    settings = HttpSettings(connect_timeout=1.0, read_timeout=5.0, retries=10, backoff=0.2, deadline=1.0)
    with pytest.raises(ForgeError, match="deadline of 1 s"):
        run_sync(etc, world, settings=settings)
    # Each attempt takes at least 0.4 s, so at most 3 start within the 1 s deadline, not the 11 the retries allow.
    assert 1 <= len(world.requests_to("/api/v4/users")) <= 3
    assert_untouched(etc)


def test_connection_refused_is_retried_then_fails(etc: Path, keys: Keys) -> None:
    with serve(FakeForge("gitlab")) as gone:
        url = gone.url
    dead = FakeForge("gitlab", url=url)
    (etc / "allowed_signers").write_bytes(PREVIOUS)
    with pytest.raises(ForgeError, match=r"connection failed .*\(gave up after 3 attempts\)"):
        run_sync(etc, dead)
    assert_untouched(etc)


def test_a_redirect_is_refused_and_the_token_stays_home(etc: Path, world: FakeForge) -> None:
    with serve(FakeForge("gitlab")) as elsewhere:
        world.fault("/api/v4/users", Fault(status=302, location=f"{elsewhere.url}/api/v4/users?username=alice"))
        with pytest.raises(ForgeError, match="HTTP 302 redirect to"):
            run_sync(etc, world)
        assert elsewhere.seen == []
    assert_untouched(etc)


@pytest.mark.parametrize(("body", "message"), [
    (b"<html>sign in</html>", "the answer is not JSON"),
    ({"message": "hello"}, "expected a JSON list, got dict"),
])
def test_an_answer_of_the_wrong_shape_fails(etc: Path, world: FakeForge, monkeypatch: pytest.MonkeyPatch,
                                           body: object, message: str) -> None:
    monkeypatch.setattr(world, "answer", lambda path, query: (200, {}, body))
    with pytest.raises(ForgeError, match=message):
        run_sync(etc, world)
    assert_untouched(etc)


def test_a_huge_answer_is_cut_off(etc: Path, world: FakeForge) -> None:
    settings = HttpSettings(retries=0, backoff=0.01, deadline=20.0, max_response_bytes=200)
    with pytest.raises(ForgeError, match="answer larger than 200 bytes"):
        run_sync(etc, world, settings=settings)
    assert_untouched(etc)


def test_a_key_registered_for_two_people_is_refused(etc: Path, world: FakeForge, keys: Keys) -> None:
    world.users["Bob"]["keys"].append(gitlab_key(9, keys.pub("alice1"), "signing"))
    with pytest.raises(TrustSyncError) as info:
        run_sync(etc, world)
    fingerprint = next(k.fingerprint for k in _plan_keys(etc, world) if k.key_b64 == keys.b64("alice1"))
    assert info.value.message == (f"refusing to write the trust store: key {fingerprint} is registered for "
                                  "alice (gitlab user alice), bob (gitlab user bob)")
    assert "one key must belong to one person" in info.value.hint
    assert_untouched(etc)


def test_injected_newlines_in_key_text_and_title_do_not_add_lines(etc: Path, world: FakeForge, keys: Keys) -> None:
    evil = keys.pub("mallory")
    world.users["carol"]["keys"] = [
        gitlab_key(20, f"{keys.pub('carol')}\nmallory ssh-ed25519 {keys.b64('mallory')}", "signing",
                   title=f"x\nmallory {evil}"),
        gitlab_key(21, "ssh-ed25519 not-base64!", "signing"),
        gitlab_key(22, f"ssh-rsa {keys.b64('mallory')}", "signing"),
    ]
    code, out = run_sync(etc, world)
    target = etc / "allowed_signers"
    assert lint_allowed_signers(target) == []
    assert not any(line.startswith("mallory") for line in target.read_text().splitlines())
    assert keys.b64("mallory") not in target.read_text()
    assert signed_line("carol", keys.pub("carol"), NAMESPACE) in key_lines(target)
    assert "  carol (carol) key 21 \"laptop\": key: key data is not valid base64" in out.splitlines()
    assert "  carol (carol) key 22 \"laptop\": key: type 'ssh-rsa' does not match the key data (ssh-ed25519)" \
        in out.splitlines()


def test_no_key_at_all_is_never_written(etc: Path, world: FakeForge) -> None:
    for user in world.users.values():
        user["keys"] = []
    with pytest.raises(TrustSyncError, match="refusing to write an empty trust store"):
        run_sync(etc, world)
    assert_untouched(etc)


def test_taking_keys_from_most_people_needs_force(etc: Path, gitlab: FakeForge, keys: Keys) -> None:
    for name in ("alice", "bob", "carol"):
        gitlab.add_user(name, [gitlab_key(len(name), keys.pub(f"drop-{name}"), "signing")])
    assert run_sync(etc, gitlab)[0] == 4  # dave.d does not exist
    first = (etc / "allowed_signers").read_bytes()
    gitlab.users["bob"]["keys"] = []
    gitlab.users["carol"]["state"] = "blocked"
    with pytest.raises(TrustSyncError) as info:
        run_sync(etc, gitlab)
    assert info.value.message == (f"refusing to write {etc / 'allowed_signers'}: the sync would take every key from "
                                  "2 of the 3 people who had one (bob, carol), more than 50%")
    assert "--force" in info.value.hint
    assert (etc / "allowed_signers").read_bytes() == first
    code, out = run_sync(etc, gitlab, force=True)
    assert code == 4
    assert "  carol: gitlab user 'carol': user state is 'blocked', not 'active'" in out.splitlines()
    assert [line.split()[0] for line in key_lines(etc / "allowed_signers")] == ["alice"]
    assert (etc / "allowed_signers.prev").read_bytes() == first
    # One of three (a person who left) is below the threshold: no --force needed.
    gitlab.users["bob"]["keys"] = [gitlab_key(3, keys.pub("drop-bob"), "signing")]
    gitlab.users["carol"]["state"] = "active"
    assert run_sync(etc, gitlab)[0] == 4
    gitlab.users["carol"]["keys"] = []
    assert run_sync(etc, gitlab)[0] == 4


def test_a_concurrent_sync_is_refused(etc: Path, world: FakeForge) -> None:
    with open(etc / "allowed_signers.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(TrustSyncError, match="another trust sync holds"):
            run_sync(etc, world)
    assert world.seen == []
    assert_untouched(etc)


def test_a_symlinked_output_is_refused(etc: Path, world: FakeForge) -> None:
    real = etc / "real_signers"
    real.write_bytes(PREVIOUS)
    link = etc / "linked"
    link.symlink_to(real)
    with pytest.raises(TrustSyncError, match="is a symbolic link"):
        run_sync(etc, world, output=link)
    assert real.read_bytes() == PREVIOUS


def test_an_unwritable_directory_fails_cleanly(etc: Path, world: FakeForge, unprivileged: Unprivileged) -> None:
    # Root writes anywhere: the sync runs as a real unprivileged account that owns the folder but lacks its write bit.
    out_dir = unprivileged.folder / "ro"
    out_dir.mkdir()
    (out_dir / "signers").write_bytes(PREVIOUS)
    (out_dir / "signers.lock").write_bytes(b"")
    for path in (out_dir, out_dir / "signers", out_dir / "signers.lock"):
        os.chown(path, unprivileged.uid, unprivileged.gid)
    out_dir.chmod(0o555)
    shutil.copytree(etc, unprivileged.folder / "etc")
    # One run as ourselves first: the child cannot import what is not loaded yet when the interpreter's standard
    # library sits below a directory the account cannot enter (pyenv under /root).
    run_sync(etc, world, output=etc / "warm-up")
    try:
        with pytest.raises(TrustSyncError, match="cannot write .*Permission denied"):
            unprivileged.call(run_sync, unprivileged.folder / "etc", world, output=out_dir / "signers")
    finally:
        out_dir.chmod(0o755)
    assert (out_dir / "signers").read_bytes() == PREVIOUS
    assert sorted(p.name for p in out_dir.iterdir()) == ["signers", "signers.lock"]


# -- token and URL --------------------------------------------------------------------------------------------------


def test_no_token_is_an_error(etc: Path, world: FakeForge) -> None:
    with pytest.raises(ForgeError) as info:
        run_sync(etc, world, token_file=None)
    assert info.value.message == "no API token"
    assert "--token-file FILE, or set $GATEKEEPER_FORGE_TOKEN" in info.value.hint
    assert world.seen == []


def test_token_from_the_environment(etc: Path, world: FakeForge) -> None:
    assert trustsync.read_token(None, {"GATEKEEPER_FORGE_TOKEN": " tok-1 \n"}) == "tok-1"


@pytest.mark.parametrize("content", [b"", b"\n", b"two words\n", b"line1\nline2\n", b"\xff\xfe", b"x" * 5000])
def test_a_bad_token_file_is_refused_without_echoing_it(etc: Path, content: bytes) -> None:
    (etc / "token").write_bytes(content)
    with pytest.raises(ForgeError) as info:
        trustsync.read_token(etc / "token", {})
    assert b"words" not in str(info.value).encode() and b"line1" not in str(info.value).encode()


def test_plain_http_to_a_remote_host_is_refused(etc: Path) -> None:
    with pytest.raises(ForgeError, match="plain http: the token would cross the network unencrypted"):
        trustsync.make_forge("gitlab", "http://gitlab.example.com", TOKEN)
    with pytest.raises(ForgeError, match="must be a plain base URL") as info:
        trustsync.make_forge("gitea", "https://user:hunter2@gitea.example.com", TOKEN)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ForgeError, match="is not an http"):
        trustsync.make_forge("gitea", "ftp://gitea.example.com", TOKEN)


def test_api_suffix_is_accepted(etc: Path, world: FakeForge) -> None:
    out = run_sync(etc, FakeForge("gitlab", users=world.users, url=world.url + "/api/v4/"))[1]
    assert "5 keys for 2 of 4 people" in out


def test_a_missing_trust_store_gets_a_bootstrap_hint(etc: Path, world: FakeForge) -> None:
    (etc / "allowed_signers").unlink()
    with pytest.raises(ConfigError) as info:
        run_sync(etc, world)
    assert info.value.hint.startswith("before the first sync, create the file empty: install -m 0644 /dev/null")


def _plan_keys(etc: Path, forge: FakeForge) -> tuple[trustsync.TrustedKey, ...]:
    from gatekeeper.policy.config import load_policy

    policy = load_policy(etc / "policy.yaml")
    people = trustsync.people_accounts(policy.people.values())
    gl = trustsync.GitLab(forge.url, TOKEN, FAST)
    from .helpers import NOW

    plan = trustsync.plan_trust_store(people, trustsync.collect(gl, people), forge="gitlab x", kind="gitlab",
                                      namespace=NAMESPACE, now=NOW)
    return plan.keys



def test_a_failed_rename_leaves_the_store_and_no_temp_file(etc: Path, world: FakeForge,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace

    def full_disk(src: str, dst: str) -> None:
        if Path(dst).name == "allowed_signers":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(TrustSyncError, match="cannot write .*allowed_signers: No space left on device"):
        run_sync(etc, world)
    assert (etc / "allowed_signers").read_bytes() == PREVIOUS
    assert [p.name for p in etc.iterdir() if p.name.endswith(".tmp")] == []


def test_https_verifies_the_certificate_and_honours_the_ca_bundle(etc: Path, keys: Keys, tmp_path: Path) -> None:
    from .fakeforge import self_signed

    cert, key = self_signed(tmp_path)
    (etc / "allowed_signers").write_bytes(PREVIOUS)
    forge = FakeForge("gitlab")
    gitlab_world(forge, keys)
    with serve(forge, tls=(cert, key)):
        assert forge.url.startswith("https://")
        with pytest.raises(ForgeError, match=r"connection failed \(.*CERTIFICATE_VERIFY_FAILED"):
            run_sync(etc, forge, settings=HttpSettings(retries=0, deadline=20.0))
        assert_untouched(etc)
        out = io.StringIO()
        code = trustsync.sync(kind="gitlab", url=forge.url, config=etc / "policy.yaml", out=out,
                              env={"GATEKEEPER_FORGE_TOKEN": TOKEN, "REQUESTS_CA_BUNDLE": str(cert)}, settings=FAST)
    assert code == 4, out.getvalue()
    assert len(key_lines(etc / "allowed_signers")) == 5


def test_gitea_key_of_another_user_fails_the_sync(etc: Path, gitea: FakeForge, keys: Keys) -> None:
    from .conftest import gitea_key

    gitea.add_user("alice", [gitea_key(1, keys.pub("alice1"), owner="mallory")])
    (etc / "allowed_signers").write_bytes(PREVIOUS)
    with pytest.raises(ForgeError, match="GET /users/alice/keys: key 1 belongs to 'mallory', not 'alice'"):
        run_sync(etc, gitea)
    assert_untouched(etc)
