"""`gatekeeper audit verify|query|show|export` through the real dispatcher."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from gatekeeper.main import main

from .helpers import Env, decision


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_ok(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(5)
    code, out, err = _run(capsys, "verify", "--log", str(env.log_path), "--vkey", env.vkey)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"OK: {env.log_path}: 5 records, root ")
    assert lines[1] == "  verifier keys: pinned: --vkey"
    assert lines[2].startswith("  log checkpoint: origin git.test.example/audit, size 5, signed by git.test.example/")
    assert "keep this checkpoint and pass it next time" in lines[3]


def test_verify_names_the_first_bad_record(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(8)
    lines = env.lines()
    lines[4] = lines[4].replace(b"ml/llama", b"ml/llamX")
    env.write_lines(lines)
    code, out, _ = _run(capsys, "verify", "--log", str(env.log_path), "--vkey", env.vkey)
    assert code == 1
    assert out.splitlines()[0] == f"FAIL: {env.log_path}: 2 error(s); first bad record: line 5 (seq 4)"
    assert ("error: [chain-break] line 5, seq 4: the record on line 5 (seq 4) was modified: its hash no longer "
            "matches the prev of line 6 (seq 5)") in out
    assert "error: [root-mismatch]" in out


def test_verify_json_and_default_vkey(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(3)
    code, out, _ = _run(capsys, "verify", "--log", str(env.log_path), "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and doc["records"] == 3
    assert doc["vkey_source"].startswith(str(env.dir / "audit-signing.key.pub"))
    env.write_lines(env.lines()[:2])
    code, out, _ = _run(capsys, "verify", "--log", str(env.log_path), "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["errors"][0]["code"] == "truncated"


def test_verify_trusted_checkpoint_tofu_and_rollback(env: Env, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(3)
    backup = {f: f.read_bytes() for f in (env.log_path, env.checkpoint, env.state)}
    trusted = tmp_path / "kept.checkpoint"
    args = ["verify", "--log", str(env.log_path), "--vkey", env.vkey, "--trusted-checkpoint", str(trusted),
            "--update-trusted"]
    code, out, _ = _run(capsys, *args)  # first audit: trust on first use
    assert code == 0 and f"trusted checkpoint {trusted} updated" in out
    assert trusted.read_bytes() == env.checkpoint.read_bytes()
    env.fill(2)
    code, out, _ = _run(capsys, *args)
    assert code == 0 and "updated" in out and b"\n5\n" in trusted.read_bytes()
    for f, data in backup.items():  # the server's operator restores the older log with its checkpoint
        f.write_bytes(data)
    code, out, _ = _run(capsys, "verify", "--log", str(env.log_path), "--vkey", env.vkey)
    assert code == 0  # locally consistent: the documented limit
    code, out, _ = _run(capsys, *args)
    assert code == 1 and "error: [rollback]" in out
    assert b"\n5\n" in trusted.read_bytes()  # never moved backwards


def test_verify_strict_fails_on_warnings(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(2)
    with open(env.log_path, "ab") as fh:
        fh.write(b'{"torn')
    assert _run(capsys, "verify", "--log", str(env.log_path), "--vkey", env.vkey)[0] == 0
    code, out, _ = _run(capsys, "verify", "--log", str(env.log_path), "--vkey", env.vkey, "--strict")
    assert code == 1 and "warning: [torn-tail]" in out and "FAIL: warnings with --strict" in out


def test_verify_vkey_file_and_errors(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(1)
    keys = tmp_path / "pinned.vkeys"
    keys.write_text(f"# the audit key of git-01\n{env.vkey}\n")
    code, out, _ = _run(capsys, "verify", "--log", str(env.log_path), "--vkey-file", str(keys))
    assert code == 0 and f"verifier keys: pinned: {keys}" in out
    code, _, err = _run(capsys, "verify", "--log", str(env.log_path), "--vkey", "garbage")
    assert code == 1
    assert err.splitlines()[0] == ("gatekeeper: error: --vkey:1: verifier key 'garbage' is not of the form "
                                   "name+keyid+base64")
    code, _, err = _run(capsys, "verify", "--log", str(tmp_path / "none.jsonl"))
    assert code == 1 and f"gatekeeper: error: audit log {tmp_path / 'none.jsonl'} does not exist" in err


def test_query_formats(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    w = env.writer()
    w.append(decision(0, user="alice"))
    w.append(decision(1, user="bob", decision="deny", paths=("weights/x.pkl", "evil\x1b[2Jname.py")))
    w.append(decision(2, user="carol", ref="=HYPERLINK(\"http://x\")"))
    code, out, err = _run(capsys, "query", "--log", str(env.log_path), "--pusher", "bob")
    assert code == 0 and err == "(1 record)\n"
    header, row = out.splitlines()
    assert header.split() == ["SEQ", "TS", "TYPE", "REPO", "PUSHER", "DECISION", "REFS", "PATHS"]
    assert row.split()[:6] == ["1", row.split()[1], "push.decision", "ml/llama", "bob", "deny"]
    assert "\x1b" not in out and "evil\\x1b[2Jname.py" in row  # terminal escapes are shown, not executed
    code, out, _ = _run(capsys, "query", "--log", str(env.log_path), "--format", "json", "--path", "*.pkl")
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [1]
    code, out, _ = _run(capsys, "query", "--log", str(env.log_path), "--format", "csv", "--limit", "2")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["seq", "ts", "type", "push_id", "repo", "pusher", "mode", "decision", "refs", "rules",
                       "approvers", "break_glass_reason", "paths_total", "paths"]
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    assert rows[2][-1] == "weights/x.pkl\nevil\\x1b[2Jname.py"  # every path, one per line, escapes shown
    code, out, _ = _run(capsys, "query", "--log", str(env.log_path), "--format", "csv", "--pusher", "carol")
    assert list(csv.reader(io.StringIO(out)))[1][8].startswith("'=HYPERLINK")  # no spreadsheet formula
    code, out, err = _run(capsys, "query", "--log", str(env.log_path), "--decision", "break-glass", "--no-index")
    assert code == 0 and err == "(0 records)\n"
    with pytest.raises(SystemExit) as info:  # a bad value is a usage error, like an unknown option (issue 11)
        _run(capsys, "query", "--log", str(env.log_path), "--since", "last week")
    assert info.value.code == 2 and "invalid time 'last week'" in capsys.readouterr().err


def test_show(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(3)
    code, out, _ = _run(capsys, "show", "1", "--log", str(env.log_path))
    first, rest = out.split("\n", 1)
    assert code == 0 and first.startswith("record seq 1 (line 2), hash ")
    assert json.loads(rest)["seq"] == 1
    code, out, _ = _run(capsys, "show", "2", "--log", str(env.log_path), "--format", "json")
    doc = json.loads(out)
    assert (doc["line"], doc["record"]["seq"]) == (3, 2) and len(doc["hash"]) == 64
    code, _, err = _run(capsys, "show", "7", "--log", str(env.log_path))
    assert code == 1 and f"gatekeeper: error: no record with seq 7 in {env.log_path}" in err


def test_export_folder_and_tarball_verify_offline(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(4)
    with open(env.log_path, "ab") as fh:
        fh.write(b'{"half a line')  # an append in flight is not exported
    out_dir = tmp_path / "export"
    code, out, _ = _run(capsys, "export", "--log", str(env.log_path), "--out", str(out_dir))
    assert code == 0 and out.startswith("exported 4 records (") and "checkpoint size 4" in out
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "MANIFEST.json", "README.txt", "audit-signing.key.pub", "audit.jsonl", "audit.jsonl.checkpoint"]
    manifest = json.loads((out_dir / "MANIFEST.json").read_text())
    assert manifest["records"] == 4 and manifest["checkpoint"]["size"] == 4
    env.fill(1)  # the server goes on; the export is a snapshot
    code, out, _ = _run(capsys, "verify", "--log", str(out_dir / "audit.jsonl"), "--vkey", env.vkey)
    assert code == 0 and "4 records" in out
    tarball = tmp_path / "bundle.tar.gz"
    assert _run(capsys, "export", "--log", str(env.log_path), "--out", str(tarball))[0] == 0
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    code, out, _ = _run(capsys, "verify", "--log", str(tmp_path / "unpacked" / "bundle" / "audit.jsonl"))
    assert code == 0 and "6 records" in out and "found next to the log" in out  # 4 + recovery of the torn line + 1
    code, _, err = _run(capsys, "export", "--log", str(env.log_path), "--out", str(out_dir))
    assert code == 1 and f"refusing to overwrite {out_dir}" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".audit-export-")]


def test_config_supplies_the_log_path(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(2)
    config = env.dir / "gatekeeper.yaml"
    config.write_text("version: 1\naudit:\n  log: audit.jsonl\n")
    code, out, _ = _run(capsys, "verify", "--config", str(config), "--vkey", env.vkey)
    assert code == 0 and "2 records" in out
    config.write_text("version: 1\n")
    code, _, err = _run(capsys, "verify", "--config", str(config))
    assert code == 1 and "has no audit.log setting" in err


def test_usage_errors(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["audit"])
    assert info.value.code == 2
    code, _, err = _run(capsys, "verify")  # --log, --config or --db is required
    assert code == 2 and "say which audit log" in err
    code, _, err = _run(capsys, "verify", "--log", str(env.log_path), "--update-trusted")
    assert code == 2 and "--update-trusted needs --trusted-checkpoint FILE" in err  # a usage error (issue 11)


def test_export_copies_exactly_the_log(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(2)
    _run(capsys, "export", "--log", str(env.log_path), "--out", str(tmp_path / "e"))
    assert (tmp_path / "e" / "audit.jsonl").read_bytes() == env.log_path.read_bytes()
    shutil.rmtree(tmp_path / "e")


def test_export_of_an_unsealed_log_and_extra_checkpoints(env: Env, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    env.fill(3)
    copy = tmp_path / "worm.checkpoint"  # a copy the server pushed to WORM storage at size 3
    shutil.copy(env.checkpoint, copy)
    env.fill(1)
    code, out, _ = _run(capsys, "verify", "--log", str(env.log_path), "--vkey", env.vkey, "--checkpoint", str(copy))
    assert code == 0 and f"extra #1 checkpoint {copy}: origin git.test.example/audit, size 3" in out
    env.checkpoint.unlink()
    code, out, _ = _run(capsys, "export", "--log", str(env.log_path), "--out", str(tmp_path / "e"))
    assert code == 0 and "bytes, no checkpoint) to" in out
    code, out, _ = _run(capsys, "verify", "--log", str(tmp_path / "e" / "audit.jsonl"), "--vkey", env.vkey)
    assert code == 1 and "error: [no-checkpoint]" in out
    code, _, err = _run(capsys, "export", "--log", str(env.log_path), "--out", str(tmp_path / "missing" / "e"))
    assert code == 1 and "cannot export the audit log" in err


def test_table_rows_tolerate_any_record_shape() -> None:
    from gatekeeper.audit.rows import flat_row as _row

    assert _row({"seq": 1, "event": "not an object"})["type"] == ""
    row = _row({"seq": 2, "ts": "t", "event": {"type": "push.decision", "pusher": "x", "updates": [
        {"ref": "refs/heads/main", "kind": "force", "paths": ["a", "b", "c", "d"], "paths_total": 1000},
        "junk", {"ref": "refs/tags/v1", "paths": "not a list"}]}})
    assert row["refs"] == "refs/heads/main(force) refs/tags/v1"
    assert row["paths"] == "a b c (+997 more)"
    assert row["pusher"] == ""
