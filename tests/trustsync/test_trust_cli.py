"""``gatekeeper trust sync`` through the real dispatcher: exit codes, report on stdout, errors on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper.main import main

from .conftest import Keys
from .fakeforge import FakeForge, Fault
from .helpers import TOKEN, gitlab_world, key_lines

REPO_ROOT = Path(__file__).resolve().parents[2]


def _args(etc: Path, forge: FakeForge, *extra: str) -> list[str]:
    return ["trust", "sync", f"--{forge.kind}", forge.url, "--config", str(etc / "policy.yaml"), "--retries", "0",
            *extra]


def test_cli_sync_with_token_from_env(etc: Path, gitlab: FakeForge, keys: Keys, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    gitlab_world(gitlab, keys)
    monkeypatch.setenv("GATEKEEPER_FORGE_TOKEN", TOKEN)
    assert main(_args(etc, gitlab)) == 4
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0] == f"trust sync from gitlab {gitlab.url}: 5 keys for 2 of 4 people"
    assert len(key_lines(etc / "allowed_signers")) == 5
    assert TOKEN not in out


def test_cli_failure_exits_1_with_message_and_hint(etc: Path, gitlab: FakeForge, keys: Keys,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    gitlab_world(gitlab, keys)
    gitlab.fault("/api/v4/users", Fault(status=401))
    assert main(_args(etc, gitlab, "--token-file", str(etc / "token"))) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == (f"gatekeeper: error: GET {gitlab.url}/api/v4/users?username=alice: HTTP 401: "
                                   "the forge refused the token")
    assert err.splitlines()[1].startswith("hint: check the token")
    assert TOKEN not in err
    assert (etc / "allowed_signers").read_bytes() == b""


def test_cli_output_option_and_dry_run(etc: Path, gitea: FakeForge, keys: Keys, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    gitea.add_user("alice", [{"id": 1, "key": keys.pub("cli-alice"), "title": "t", "key_type": "user"}])
    monkeypatch.setenv("GATEKEEPER_FORGE_TOKEN", TOKEN)
    other = etc / "other_signers"
    other.write_text("")
    assert main(_args(etc, gitea, "--output", str(other), "--dry-run")) == 4
    assert other.read_text() == ""
    assert main(_args(etc, gitea, "--output", str(other))) == 4
    assert [line.split()[0] for line in key_lines(other)] == ["alice"]
    assert (etc / "allowed_signers").read_text() == ""


@pytest.mark.parametrize("extra", [["--gitea", "http://127.0.0.1:1"], ["--max-drop", "150"], ["--timeout", "0"]])
def test_cli_usage_errors_exit_2(etc: Path, gitlab: FakeForge, extra: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(_args(etc, gitlab, *extra))
    assert info.value.code == 2


def test_cli_in_a_real_process(etc: Path, gitlab: FakeForge, keys: Keys) -> None:
    gitlab_world(gitlab, keys)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GATEKEEPER_FORGE_TOKEN": TOKEN}
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", *_args(etc, gitlab)], capture_output=True, text=True,
                          env=env, cwd=etc, check=False)
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout.splitlines()[-1] == (f"wrote {etc / 'allowed_signers'} (5 keys; previous kept as "
                                            f"{etc / 'allowed_signers'}.prev)")


def test_cli_json_report_is_structured(etc: Path, gitlab: FakeForge, keys: Keys, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """--format json gives the plan as data (people, keys, who has none, skipped keys), not wrapped text lines, and
    the same exit status and trust store as the text run."""
    import json

    gitlab_world(gitlab, keys)
    monkeypatch.setenv("GATEKEEPER_FORGE_TOKEN", TOKEN)
    assert main(_args(etc, gitlab, "--format", "json", "--dry-run")) == 4
    dry = json.loads(capsys.readouterr().out)
    assert dry["schema"] == "gatekeeper.trust-sync/2"
    assert dry["dry_run"] is True and dry["changed"] is True and dry["diff"][0].startswith("--- ")
    assert (etc / "allowed_signers").read_bytes() == b""
    assert main(_args(etc, gitlab, "--format", "json")) == 4
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_status"] == 4 and doc["people_without_key"] is True and doc["changed"] is True
    assert doc["diff"] == [] and doc["trust_store"] == str(etc / "allowed_signers")
    with_keys = {p["person"]: p for p in doc["people"] if p["keys"]}
    assert sum(len(p["keys"]) for p in with_keys.values()) == len(key_lines(etc / "allowed_signers")) == 5
    assert all(k["fingerprint"].startswith("SHA256:") for p in with_keys.values() for k in p["keys"])
    assert [p["person"] for p in doc["people"] if p["missing"]] and not any(p["missing"] for p in with_keys.values())
    assert "report" not in doc and TOKEN not in json.dumps(doc)
    assert main(_args(etc, gitlab, "--format", "json")) == 4
    assert json.loads(capsys.readouterr().out)["changed"] is False
