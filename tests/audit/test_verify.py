"""`verify_log`: the tamper matrix, rollback and fork detection (reference B5, B6.1-B6.5)."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.audit import canonical
from gatekeeper.audit.keys import generate_signing_key
from gatekeeper.audit.log import AuditLog
from gatekeeper.audit.merkle import leaf_hash
from gatekeeper.audit.verify import VerifyReport, save_trusted_checkpoint, verify_log
from gatekeeper.errors import AuditError

from .helpers import ORIGIN, Env, decision, make_env, rechain as _rechain


def _verify(env: Env, **kwargs: object) -> VerifyReport:
    return verify_log(env.log_path, vkeys=[env.vkey], **kwargs)  # type: ignore[arg-type]


def _codes(report: VerifyReport) -> list[str]:
    return [i.code for i in report.errors]


def test_round_trip(env: Env) -> None:
    env.fill(10)
    report = _verify(env)
    assert report.ok and not report.warnings
    assert report.records == 10
    (cp,) = report.checkpoints
    assert (cp.source, cp.origin, cp.size, cp.root) == ("log", ORIGIN, 10, report.root)
    assert cp.verified_by == ("+".join(env.vkey.split("+", 2)[:2]),)
    assert report.event_types == {"push.decision": 6, "push.outcome": 4}
    assert report.vkey_source == "pinned: --vkey"
    doc = report.to_dict()
    assert doc["ok"] is True and doc["records"] == 10 and doc["errors"] == []


def test_default_vkey_next_to_log_is_used_and_named(env: Env) -> None:
    env.fill(2)
    report = verify_log(env.log_path)
    assert report.ok
    assert report.vkey_source.startswith(str(env.dir / "audit-signing.key.pub"))
    assert "pin the key with --vkey" in report.vkey_source


def test_field_edit_names_the_edited_record(env: Env) -> None:
    env.fill(10)
    lines = env.lines()
    lines[4] = lines[4].replace(b'"ml/llama"', b'"ml/llamb"')
    env.write_lines(lines)
    report = _verify(env)
    assert _codes(report) == ["chain-break", "root-mismatch"]
    first = report.errors[0]
    assert (first.line, first.seq) == (5, 4)
    assert str(first) == ("[chain-break] line 5, seq 4: the record on line 5 (seq 4) was modified: its hash no longer "
                          "matches the prev of line 6 (seq 5)")


def test_edit_of_last_record_is_caught_by_the_checkpoint(env: Env) -> None:
    env.fill(5)
    lines = env.lines()
    lines[-1] = lines[-1].replace(b'"ml/llama"', b'"ml/other"')
    env.write_lines(lines)
    assert _codes(_verify(env)) == ["root-mismatch"]


def test_edit_with_recomputed_chain_is_a_root_mismatch(env: Env) -> None:
    env.fill(10)
    lines = env.lines()
    assert b'"allow"' in lines[4]
    lines[4] = lines[4].replace(b'"allow"', b'"deny"')
    env.write_lines(_rechain(lines, 4))
    report = _verify(env)
    assert _codes(report) == ["root-mismatch"]
    assert "history was rewritten" in report.errors[0].message


def test_middle_delete(env: Env) -> None:
    env.fill(10)
    lines = env.lines()
    del lines[4]
    env.write_lines(lines)
    report = _verify(env)
    assert _codes(report)[0] == "seq-gap"
    assert (report.errors[0].line, report.errors[0].seq) == (5, 5)
    assert "expected seq 4, found 5: record 4 was deleted" in report.errors[0].message


def test_insertion(env: Env) -> None:
    env.fill(10)
    lines = env.lines()
    forged = json.loads(lines[5])
    forged["event"]["repo"] = "ml/forged"
    forged["prev"] = leaf_hash(lines[4].rstrip(b"\n")).hex()  # chains correctly onto record 4
    lines.insert(5, canonical.encode(forged) + b"\n")
    env.write_lines(lines)
    report = _verify(env)
    assert _codes(report)[0] == "seq-mismatch"
    assert (report.errors[0].line, report.errors[0].seq) == (7, 5)
    assert "duplicated, inserted or reordered" in report.errors[0].message


def test_swap(env: Env) -> None:
    env.fill(10)
    lines = env.lines()
    lines[3], lines[4] = lines[4], lines[3]
    env.write_lines(lines)
    report = _verify(env)
    assert _codes(report)[0] == "seq-gap"
    assert report.errors[0].line == 4
    assert "reordered" in report.errors[0].message


def test_duplicate(env: Env) -> None:
    env.fill(10)
    lines = env.lines()
    lines.insert(4, lines[3])
    env.write_lines(lines)
    report = _verify(env)
    assert _codes(report)[0] == "seq-mismatch"
    assert (report.errors[0].line, report.errors[0].seq) == (5, 3)


def test_truncate_last_k(env: Env) -> None:
    env.fill(10)
    env.write_lines(env.lines()[:-3])
    report = _verify(env)
    assert _codes(report) == ["truncated"]
    assert report.errors[0].message == (
        "the log's checkpoint covers 10 records but the log has only 7: records 7..9 were removed from the end "
        "(truncation)"
    )


def test_whitespace_only_edit(env: Env) -> None:
    env.fill(5)
    lines = env.lines()
    lines[2] = lines[2].replace(b'","', b'", "', 1)
    env.write_lines(lines)
    report = _verify(env)
    assert _codes(report)[0] == "non-canonical"
    assert (report.errors[0].line, report.errors[0].seq) == (3, 2)


def test_key_reorder_in_a_line(env: Env) -> None:
    env.fill(3)
    lines = env.lines()
    rec = json.loads(lines[1])
    lines[1] = json.dumps(dict(reversed(list(rec.items()))), separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    env.write_lines(lines)
    assert _codes(_verify(env))[0] == "non-canonical"


def test_first_record_removed_and_rechained_from_zero(env: Env) -> None:
    env.fill(5)
    env.write_lines(_rechain(env.lines()[1:], 0))
    report = _verify(env)
    assert "truncated" in _codes(report) or "root-mismatch" in _codes(report)
    assert not report.ok


def test_rollback_passes_locally_but_not_against_a_trusted_checkpoint(env: Env, tmp_path: Path) -> None:
    env.fill(5)
    backup = tmp_path / "backup"
    backup.mkdir()
    for f in (env.log_path, env.checkpoint, env.state):
        shutil.copy(f, backup / f.name)
    env.fill(5)
    trusted = tmp_path / "auditor.checkpoint"
    shutil.copy(env.checkpoint, trusted)
    for f in (env.log_path, env.checkpoint, env.state):
        shutil.copy(backup / f.name, f)
    # The documented limit: an older log with its older, validly signed checkpoint is locally consistent.
    local = _verify(env)
    assert local.ok and local.records == 5
    report = _verify(env, trusted_checkpoint=trusted)
    assert _codes(report) == ["rollback"]
    assert report.errors[0].message == (
        "your trusted checkpoint covers 10 records but the log has only 5: records 5..9 were removed or an older "
        "log was restored (rollback)"
    )


def test_fork_evidence(env: Env, tmp_path: Path) -> None:
    env.fill(5)
    other = tmp_path / "fork"
    other.mkdir()
    for f in (env.log_path, env.checkpoint, env.state):
        shutil.copy(f, other / f.name)
    env.writer().append(decision(100, user="alice"))
    AuditLog(other / env.log_path.name, signing_key=env.key, origin=ORIGIN).append(decision(100, user="mallory"))
    report = _verify(env, trusted_checkpoint=other / (env.log_path.name + ".checkpoint"))
    assert _codes(report) == ["fork", "fork-evidence"]
    evidence = report.errors[1].message
    assert evidence.startswith("two validly signed checkpoints of size 6 with different roots: log (")
    assert "trusted (" in evidence


def test_trusted_checkpoint_older_and_consistent(env: Env, tmp_path: Path) -> None:
    env.fill(4)
    trusted = tmp_path / "auditor.checkpoint"
    shutil.copy(env.checkpoint, trusted)
    env.fill(3)
    report = _verify(env, trusted_checkpoint=trusted)
    assert report.ok
    assert save_trusted_checkpoint(report, trusted)
    assert trusted.read_bytes() == env.checkpoint.read_bytes()
    report = _verify(env, trusted_checkpoint=trusted)
    assert report.ok
    assert not save_trusted_checkpoint(report, trusted)  # not newer: left alone


def test_trusted_checkpoint_with_rewritten_prefix_is_a_fork(env: Env, tmp_path: Path) -> None:
    env.fill(4)
    trusted = tmp_path / "auditor.checkpoint"
    shutil.copy(env.checkpoint, trusted)
    env.fill(3)
    # The key holder rewrites history and re-signs it: only the auditor's checkpoint notices.
    lines = env.lines()
    lines[1] = lines[1].replace(b'"ml/llama"', b'"ml/rewritten"')
    env.write_lines(_rechain(lines, 1))
    env.state.unlink()
    env.checkpoint.unlink()
    env.writer().append(decision(99))
    assert _verify(env).ok
    assert _codes(_verify(env, trusted_checkpoint=trusted)) == ["fork"]


def test_flipped_signature_bit(env: Env) -> None:
    env.fill(3)
    text, sig_line = env.checkpoint.read_text().rsplit("\n\n", 1)
    name, b64 = sig_line.strip().rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[10] ^= 0x01
    env.checkpoint.write_text(f"{text}\n\n{name} {base64.b64encode(bytes(raw)).decode()}\n")
    report = _verify(env)
    assert _codes(report) == ["checkpoint-invalid"]
    assert "does not verify" in report.errors[0].message


def test_unknown_key(env: Env, tmp_path: Path) -> None:
    env.fill(3)
    other = generate_signing_key(tmp_path / "other.key", name="other.example/audit")
    report = verify_log(env.log_path, vkeys=[other])
    assert _codes(report) == ["checkpoint-unverified"]
    assert f"no signature from a known key (note signed by: {ORIGIN}+" in report.errors[0].message


def test_different_origin(env: Env) -> None:
    env.fill(3)
    report = _verify(env, origin="elsewhere.example/audit")
    assert _codes(report) == ["origin-mismatch"]


def test_no_vkey_anywhere(env: Env) -> None:
    env.fill(2)
    (env.dir / "audit-signing.key.pub").unlink()
    report = verify_log(env.log_path)
    assert _codes(report) == ["no-vkey"]
    assert report.vkey_source == "none"


def test_missing_checkpoint(env: Env) -> None:
    env.fill(2)
    env.checkpoint.unlink()
    assert _codes(_verify(env)) == ["no-checkpoint"]


def test_unsealed_records_warn_then_fail(env: Env) -> None:
    env.fill(3)
    unsigned = AuditLog(env.log_path, signing_key=None, origin=ORIGIN)
    unsigned.append(decision(1))
    report = _verify(env)
    assert report.ok
    assert [w.code for w in report.warnings] == ["unsealed"]
    unsigned.append(decision(2))
    unsigned.append(decision(3))
    report = _verify(env)
    assert _codes(report) == ["unsealed"]
    assert "more than an interrupted append can leave" in report.errors[0].message


def test_torn_tail_is_a_warning(env: Env) -> None:
    env.fill(3)
    with open(env.log_path, "ab") as fh:
        fh.write(b'{"event":{"type":"push.dec')
    report = _verify(env)
    assert report.ok
    assert [w.code for w in report.warnings] == ["torn-tail"]
    assert report.warnings[0].line == 4


def test_bad_event_schema(env: Env) -> None:
    log = env.writer()
    log.append(decision(0))
    bad = decision(1)
    bad["decision"] = "maybe"
    log.append(bad)
    log.append({"type": "custom.thing", "x": 1})  # unknown types are accepted (forward compatible)
    report = _verify(env)
    assert _codes(report) == ["bad-event"]
    assert (report.errors[0].line, report.errors[0].seq) == (2, 1)


def test_time_going_backwards_warns(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import gatekeeper.audit.log as log_module

    times = iter(["2026-01-01T00:00:02.000000Z", "2026-01-01T00:00:01.000000Z"])
    monkeypatch.setattr(log_module, "utc_timestamp", lambda now=None: next(times))
    env.fill(2)
    report = _verify(env)
    assert report.ok
    assert [w.code for w in report.warnings] == ["time-backwards"]


def test_missing_log_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="does not exist"):
        verify_log(tmp_path / "nope.jsonl")


def test_garbage_checkpoint_file(env: Env) -> None:
    env.fill(2)
    env.checkpoint.write_bytes(b"\x00" * 10)
    assert _codes(_verify(env)) == ["checkpoint-invalid"]


def test_other_env_checkpoint_as_extra_is_foreign(env: Env, tmp_path: Path) -> None:
    env.fill(2)
    other = make_env(tmp_path / "o" if (tmp_path / "o").mkdir() is None else tmp_path)
    other.fill(2)
    report = _verify(env, checkpoints=[other.checkpoint])
    assert _codes(report) == ["checkpoint-unverified"]


def _tamper_cases(lines: list[bytes]) -> list[list[bytes]]:
    edited = list(lines)
    edited[17] = edited[17].replace(b"ml/llama", b"ml/llamX")
    deleted = lines[:20] + lines[21:]
    swapped = list(lines)
    swapped[10], swapped[11] = swapped[11], swapped[10]
    duplicated = lines[:25] + [lines[24]] + lines[25:]
    spaced = list(lines)
    spaced[30] = spaced[30].replace(b'","', b'", "', 1)
    garbage = lines[:5] + [b"not json\n"] + lines[5:]
    return [list(lines), edited, deleted, swapped, duplicated, spaced, garbage, lines[:-4], lines + [b'{"torn']]


def test_parallel_verification_reports_exactly_what_a_single_pass_does(
    env: Env, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gatekeeper.audit.verify as verify_module

    env.fill(40)
    original = env.lines()
    monkeypatch.setattr(verify_module, "PARALLEL_MIN_BYTES", 0)
    for case in _tamper_cases(original):
        env.write_lines(case)
        single = _verify(env, jobs=1)
        parallel = _verify(env, jobs=3)  # 12 ranges of ~3 lines: every kind of damage lands on some boundary
        assert (parallel.errors, parallel.warnings, parallel.records, parallel.root) == (
            single.errors, single.warnings, single.records, single.root)
    env.write_lines(original)
    assert _verify(env, jobs=3).ok


def test_hostile_lines_fail_cleanly(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import gatekeeper.audit.verify as verify_module

    env.fill(2)
    with open(env.log_path, "ab") as fh:
        fh.write(b"[" * 200_000 + b"]" * 200_000 + b"\n")  # nesting deeper than the recursion limit
    report = _verify(env)
    assert _codes(report)[0] == "non-canonical" and report.errors[0].line == 3
    monkeypatch.setattr(verify_module, "MAX_LINE_BYTES", 1000)
    with open(env.log_path, "ab") as fh:
        fh.write(b"x" * 5000)
    with pytest.raises(AuditError, match="more than 1000 bytes without a newline"):
        _verify(env)


def test_a_float_in_one_record_of_a_big_log_is_named(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The float search runs once per read block; the block that holds the float is checked line by line."""
    import gatekeeper.audit.verify as verify_module

    monkeypatch.setattr(verify_module, "_READ_CHUNK", 4096)  # many blocks, the float in one of them
    env.fill(60)
    lines = env.lines()
    lines[41] = canonical.encode({**json.loads(lines[41]), "w": 2}).replace(b'"w":2', b'"w":1.5') + b"\n"
    env.write_lines(_rechain(lines, 42))
    report = _verify(env)
    assert "non-canonical" in _codes(report)
    bad = next(i for i in report.errors if i.code == "non-canonical")
    assert (bad.line, bad.seq) == (42, 41) and "float" in bad.message


@pytest.mark.parametrize("field, value, message", [
    ("decision", [], "push.decision has decision []"),
    ("decision", {"x": 1}, "push.decision has decision {'x': 1}"),
    ("repo", None, "without a string 'repo'"),
    ("pusher", "alice", "without a 'pusher' object"),
])
def test_decision_fields_of_the_wrong_type_are_reported_not_a_crash(
    env: Env, field: str, value: object, message: str,
) -> None:
    log = env.writer()
    log.append(decision(0))
    bad = decision(1)
    bad[field] = value
    log.append(bad)
    report = _verify(env)
    assert _codes(report) == ["bad-event"]
    assert (report.errors[0].line, report.errors[0].seq) == (2, 1) and message in report.errors[0].message


@pytest.mark.parametrize("change, message", [
    (lambda ups: ups.append({"ref": 1}), "event.updates[1] has no string 'ref'"),
    (lambda ups: ups.append({"ref": "refs/heads/x", "decision": "maybe"}), "event.updates[1].decision is 'maybe'"),
    (lambda ups: ups.append({"ref": "refs/heads/x", "paths": ["a", 1]}), "event.updates[1].paths is not a list"),
    (lambda ups: ups.append({"ref": "refs/heads/x", "paths": "a"}), "event.updates[1].paths is not a list"),
    (lambda ups: ups[0].update(paths=[["a"]]), "event.updates[0].paths is not a list"),
])
def test_bad_updates_name_the_first_bad_one(env: Env, change: Any, message: str) -> None:
    log = env.writer()
    bad = decision(0)
    change(bad["updates"])
    log.append(bad)
    report = _verify(env)
    assert _codes(report) == ["bad-event"] and report.errors[0].message.startswith(message)


@pytest.mark.parametrize("edit", [
    lambda rec: rec.update(v=True),  # true == 1 in Python: the version must be the integer 1
    lambda rec: rec.update(nod=rec.pop("node")),  # six keys, one of them not a record key
    lambda rec: rec.update(extra=1),  # seven keys
    lambda rec: rec.pop("ts"),
])
def test_record_shape_edits_are_bad_records_even_with_the_chain_recomputed(env: Env, edit: Any) -> None:
    env.fill(8)
    lines = env.lines()
    rec = json.loads(lines[4])
    edit(rec)
    lines[4] = canonical.encode(rec) + b"\n"
    env.write_lines(_rechain(lines, 5))
    report = _verify(env)
    assert "bad-record" in _codes(report)
    assert next(i for i in report.errors if i.code == "bad-record").line == 5


def test_blocks_of_any_size_give_the_same_report(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines are read in blocks; a line split over many blocks (and a block holding many lines) is judged the same."""
    import gatekeeper.audit.verify as verify_module

    env.fill(40)
    original = env.lines()
    for case in _tamper_cases(original):
        env.write_lines(case)
        reports = []
        for size in (64 * 1024, 1000, 97):
            monkeypatch.setattr(verify_module, "_READ_CHUNK", size)
            reports.append(_verify(env, jobs=1))
        first = reports[0]
        for other in reports[1:]:
            assert (other.errors, other.warnings, other.records, other.root) == (
                first.errors, first.warnings, first.records, first.root)
