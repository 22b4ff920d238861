"""The writer: durable appends, reconciliation, crash recovery, disk full, concurrency (reference B3, B6.6-B6.8)."""

from __future__ import annotations

import errno
import fcntl
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import gatekeeper.audit.log as log_module
from gatekeeper.audit.log import GENESIS_PREV, AuditLog
from gatekeeper.audit.merkle import leaf_hash
from gatekeeper.audit.verify import verify_log
from gatekeeper.errors import AuditError

from .helpers import ORIGIN, Env, decision

ROOT = Path(__file__).resolve().parents[2]


def _ok(env: Env) -> Any:
    report = verify_log(env.log_path, vkeys=[env.vkey])
    assert report.ok, report.errors
    return report


def _leftovers(env: Env) -> list[str]:
    return sorted(p.name for p in env.dir.iterdir() if ".tmp" in p.name)


def test_append_returns_the_record_and_chains(env: Env) -> None:
    log = env.writer(node="git-01")
    first = log.append(decision(0))
    second = log.append(decision(1))
    assert set(first) == {"v", "seq", "ts", "node", "prev", "event", "hash"}
    assert (first["v"], first["seq"], first["node"], first["prev"]) == (1, 0, "git-01", GENESIS_PREV)
    assert second["prev"] == first["hash"]
    lines = env.lines()
    assert leaf_hash(lines[1].rstrip(b"\n")).hex() == second["hash"]
    assert b'"hash"' not in lines[0]  # the hash is returned, not stored
    assert json.loads(lines[0])["event"] == decision(0)
    state = json.loads(env.state.read_text())
    assert (state["size"], state["length"], state["last_leaf"]) == (2, env.log_path.stat().st_size, second["hash"])
    report = _ok(env)
    assert report.checkpoints[0].size == 2 and not report.warnings
    umask = os.umask(0)
    os.umask(umask)
    assert env.log_path.stat().st_mode & 0o777 == 0o640 & ~umask


@pytest.mark.parametrize("event", [{"repo": "x"}, {"type": ""}])
def test_events_without_a_type_are_refused(env: Env, event: dict[str, object]) -> None:
    with pytest.raises(AuditError, match="must be a dict with a non-empty string 'type'"):
        env.writer().append(event)
    assert not env.log_path.exists() or env.log_path.stat().st_size == 0


@pytest.mark.parametrize(
    ("value", "recorded", "note"),
    [
        (0.5, "0.5", "float recorded as a string"),
        (2**60, str(2**60), "integer outside"),
        ("ref\udcff\udcfename", "ref\\xff\\xfename", "invalid UTF-8"),
        ("json \ud800 escape", "json \\ud800 escape", "lone surrogates"),
        (b"raw\xffbytes", "raw\\xffbytes", "bytes recorded as text"),
        ({1: "x"}, {"1": "x"}, None),
    ],
)
def test_values_pushed_data_can_produce_are_recorded_escaped(env: Env, value: object, recorded: object,
                                                             note: str | None) -> None:
    """Issue 8.8: a decision is never lost because its record could not be encoded; what changed is noted."""
    record = env.writer().append({"type": "test.event", "field": value})
    assert record["event"]["field"] == recorded  # type: ignore[index]
    notes = record["event"]["record_notes"]  # type: ignore[index]
    assert note is None or any(note in n for n in notes), notes
    assert verify_log(env.log_path, vkeys=[env.vkey]).ok


def test_non_ascii_keys_are_escaped(env: Env) -> None:
    record = env.writer().append({"type": "x", "é": 1})
    assert record["event"]["\\xe9"] == 1  # type: ignore[index]


def test_oversized_event_is_shrunk_then_summarised(env: Env) -> None:
    paths = ["p" * 60_000 + str(i) for i in range(300)]
    record = env.writer().append({"type": "push.decision", "decision": "deny", "push_id": "p1", "repo": "r",
                                  "pusher": {}, "updates": [{"ref": "refs/heads/main", "paths": paths}]})
    event = record["event"]
    assert event["decision"] == "deny" and event["push_id"] == "p1"  # type: ignore[index]
    assert len(event["updates"][0]["paths"][0]) == 4096  # type: ignore[index]
    assert any("truncated from 60001 characters" in n for n in event["record_notes"])  # type: ignore[index]
    huge = {"type": "test.event", "decision": "deny", "push_id": "p2",
            "blobs": [{"k" + str(i): "v" * 4000 for i in range(1000)} for _ in range(5)]}
    event = env.writer().append(huge)["event"]
    assert "blobs" not in event and event["push_id"] == "p2"  # type: ignore[operator,index]
    assert any("only its summary" in n for n in event["record_notes"])  # type: ignore[index]
    assert verify_log(env.log_path, vkeys=[env.vkey]).ok


def test_invalid_origin() -> None:
    with pytest.raises(AuditError, match="invalid audit log origin"):
        AuditLog(Path("x"), signing_key=None, origin="a\nb")


def test_missing_signing_key_fails_before_writing(env: Env) -> None:
    log = AuditLog(env.log_path, signing_key=env.dir / "missing.key", origin=ORIGIN)
    with pytest.raises(AuditError, match="cannot read audit signing key"):
        log.append(decision())
    assert not env.log_path.exists()


# -- concurrency ------------------------------------------------------------------------------------------------------

def _worker(log_path: str, key: str, worker: int, count: int) -> None:
    log = AuditLog(Path(log_path), signing_key=Path(key), origin=ORIGIN)
    for i in range(count):
        log.append(decision(worker * 1000 + i, user=f"user{worker}"))


@pytest.mark.timeout(120)
def test_eight_processes_and_threads_append_without_gaps(env: Env) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(env.log_path), str(env.key), w, 20)) for w in range(8)]
    threads = [threading.Thread(target=_worker, args=(str(env.log_path), str(env.key), 100 + t, 10)) for t in range(3)]
    for p in procs:
        p.start()
    for t in threads:
        t.start()
    for p in procs:
        p.join(90)
        assert p.exitcode == 0
    for t in threads:
        t.join(90)
    report = _ok(env)
    assert report.records == 8 * 20 + 3 * 10 and not report.warnings
    assert report.checkpoints[0].size == report.records
    seqs = [json.loads(line)["seq"] for line in env.lines()]
    assert seqs == list(range(report.records))
    assert _leftovers(env) == []


def test_lock_timeout_fails_closed(env: Env) -> None:
    env.fill(1)
    lock = env.log_path.with_name(env.log_path.name + ".lock")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(AuditError) as info:
            env.writer(lock_timeout=0.2).append(decision(1))
        assert time.monotonic() - started >= 0.2  # it waited; no upper bound on a loaded machine
    finally:
        os.close(fd)
    assert info.value.message == f"timed out after 0.2s waiting for the audit log lock {lock}"
    assert _ok(env).records == 1


# -- crashes ----------------------------------------------------------------------------------------------------------

_KILLED_BETWEEN_WRITE_AND_FSYNC = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from gatekeeper.audit.log import AuditLog
    log = AuditLog(Path({log!r}), signing_key=Path({key!r}), origin={origin!r})
    log.append({{"type": "push.outcome", "repo": "ml/llama", "updates": []}})
    def stuck_fsync(fd):
        Path({flag!r}).write_text("written")
        time.sleep(60)
    os.fsync = stuck_fsync   # the test's crash point: after write(), before fsync() and sealing
    log.append({{"type": "push.outcome", "repo": "ml/llama", "updates": []}})
""")


@pytest.mark.timeout(60)
def test_sigkill_between_write_and_fsync(env: Env) -> None:
    flag = env.dir / "flag"
    script = _KILLED_BETWEEN_WRITE_AND_FSYNC.format(root=str(ROOT), log=str(env.log_path), key=str(env.key),
                                                    origin=ORIGIN, flag=str(flag))
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not flag.exists():
            assert proc.poll() is None, "writer exited early"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
    report = _ok(env)  # the written line is in the page cache: present but not sealed
    assert report.records == 2
    assert [w.code for w in report.warnings] == ["unsealed"]
    env.writer().append(decision(2))  # the next append folds it in and reseals
    report = _ok(env)
    assert report.records == 3 and not report.warnings


def test_torn_tail_is_cut_and_recorded(env: Env) -> None:
    env.fill(3)
    fragment = b'{"event":{"type":"push.decision","repo":"ml/ll'
    with open(env.log_path, "ab") as fh:
        fh.write(fragment)
    assert [w.code for w in _ok(env).warnings] == ["torn-tail"]
    record = env.writer().append(decision(9))
    lines = env.lines()
    recovery = json.loads(lines[3])
    assert recovery["seq"] == 3 and record["seq"] == 4
    assert recovery["event"] == {
        "type": "recovery", "reason": "torn-tail", "offset": sum(map(len, lines[:3])), "bytes": len(fragment),
        "sha256": __import__("hashlib").sha256(fragment).hexdigest(), "prefix": fragment.decode(),
    }
    report = _ok(env)
    assert [w.code for w in report.warnings] == ["recovery"]
    assert f"cut {len(fragment)} torn bytes" in report.warnings[0].message


def test_stale_temp_file_from_a_crash_is_reused(env: Env) -> None:
    env.fill(1)
    (env.dir / "audit.jsonl.checkpoint.tmp").write_text("half a checkpoint")
    env.writer().append(decision(1))
    assert _leftovers(env) == []
    _ok(env)


def test_writer_refuses_a_log_shorter_than_its_state(env: Env) -> None:
    env.fill(5)
    env.write_lines(env.lines()[:3])
    with pytest.raises(AuditError,
                       match=r"is shorter \(\d+ bytes\) than recorded in its state .*5 records.*rolled back"):
        env.writer().append(decision(9))
    assert len(env.lines()) == 3


def test_writer_refuses_a_modified_last_record(env: Env) -> None:
    env.fill(3)
    lines = env.lines()
    lines[-1] = lines[-1].replace(b"ml/llama", b"ml/llamb")
    env.write_lines(lines)
    with pytest.raises(AuditError, match="record 2 no longer matches the hash in the state file"):
        env.writer().append(decision(9))


def test_writer_refuses_foreign_lines_after_the_state(env: Env) -> None:
    env.fill(2)
    with open(env.log_path, "ab") as fh:
        fh.write(b'{"forged": true}\n')
    with pytest.raises(AuditError, match="unexpected line at byte"):
        env.writer().append(decision(9))


def test_missing_state_is_rebuilt_from_the_log(env: Env) -> None:
    env.fill(4)
    env.state.unlink()
    assert env.writer().append(decision(4))["seq"] == 4
    assert _ok(env).records == 5


def test_invalid_state_file(env: Env) -> None:
    env.fill(1)
    env.state.write_text("{not json")
    with pytest.raises(AuditError, match="audit state file .* is invalid"):
        env.writer().append(decision(1))


# -- disk full and I/O errors -----------------------------------------------------------------------------------------

def _failing_write(monkeypatch: pytest.MonkeyPatch, match: bytes, exc: OSError | None, short: bool = False) -> None:
    real = os.write

    def fake(fd: int, data: bytes) -> int:
        if bytes(data).startswith(match):
            if short:
                return real(fd, bytes(data)[: len(data) // 2])
            assert exc is not None
            raise exc
        return real(fd, data)

    monkeypatch.setattr(log_module.os, "write", fake)


@pytest.mark.parametrize(
    ("exc", "short", "message"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), False, "No space left on device"),
        (OSError(errno.EIO, "Input/output error"), False, "Input/output error"),
        (OSError(errno.EFBIG, "File too large"), False, "File too large"),
        (None, True, "short write"),
    ],
)
def test_record_write_failure(env: Env, monkeypatch: pytest.MonkeyPatch, exc: OSError | None, short: bool,
                              message: str) -> None:
    env.fill(3)
    before = env.log_path.read_bytes()
    _failing_write(monkeypatch, b'{"event"', exc, short)
    with pytest.raises(AuditError, match=f"cannot write audit record to .*{message}") as info:
        env.writer().append(decision(9))
    assert info.value.hint.startswith("free space on the log's filesystem")
    assert env.log_path.read_bytes() == before  # line-aligned: the partial line was cut
    assert _leftovers(env) == []
    _ok(env)
    monkeypatch.undo()  # space freed: appends resume
    assert env.writer().append(decision(10))["seq"] == 3
    assert _ok(env).records == 4


def test_fsync_eio_is_fatal_and_not_retried(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.fill(2)
    before = env.log_path.read_bytes()
    calls = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        real(fd)

    monkeypatch.setattr(log_module.os, "fsync", fsync)
    with pytest.raises(AuditError, match="Input/output error"):
        env.writer().append(decision(9))
    assert env.log_path.read_bytes() == before
    assert len(calls) == 2  # the failed one and the one after ftruncate; never a retry of the failed fsync
    _ok(env)


def test_checkpoint_write_failure_takes_the_record_back(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.fill(2)
    before = env.log_path.read_bytes()
    checkpoint = env.checkpoint.read_bytes()
    _failing_write(monkeypatch, ORIGIN.encode(), OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(AuditError, match="cannot sign the audit checkpoint .*No space left on device"):
        env.writer().append(decision(9))
    assert env.log_path.read_bytes() == before
    assert env.checkpoint.read_bytes() == checkpoint
    assert _leftovers(env) == []
    monkeypatch.undo()
    assert _ok(env).records == 2
    env.writer().append(decision(10))
    assert _ok(env).records == 3


def test_state_write_failure_keeps_the_sealed_record(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.fill(2)
    _failing_write(monkeypatch, b'{"compact"', OSError(errno.ENOSPC, "No space left on device"))
    env.writer().append(decision(9))  # durable and sealed: the state is only a cache
    assert _leftovers(env) == []
    monkeypatch.undo()
    assert json.loads(env.state.read_text())["size"] == 2  # stale
    env.writer().append(decision(10))  # folds the extra line in
    assert json.loads(env.state.read_text())["size"] == 4
    assert _ok(env).records == 4


def test_only_the_checkpoint_rename_is_synced_and_a_lost_state_rename_is_reconciled(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.fill(2)
    previous = env.state.read_bytes()
    synced: list[Path] = []
    real = log_module._fsync_dir
    monkeypatch.setattr(log_module, "_fsync_dir", lambda path: (synced.append(Path(path)), real(path)))
    env.writer().append(decision(9))
    assert synced == [env.log_path.parent]  # the checkpoint's; the state's rename may be lost in a crash...
    monkeypatch.undo()
    env.state.write_bytes(previous)  # ...which brings back the previous state, as if the rename never happened
    env.writer().append(decision(10))
    assert json.loads(env.state.read_text())["size"] == 4
    assert _ok(env).records == 4


def test_unwritable_log_path_under_a_regular_file(env: Env) -> None:
    blocker = env.dir / "not-a-dir"
    blocker.write_text("")
    log = AuditLog(blocker / "audit.jsonl", signing_key=env.key, origin=ORIGIN)
    with pytest.raises(AuditError, match="cannot open audit lock file .*Not a directory"):
        log.append(decision())


def test_log_path_is_a_directory_or_symlink(env: Env) -> None:
    env.log_path.mkdir()
    with pytest.raises(AuditError, match="cannot open audit log .*Is a directory"):
        env.writer().append(decision())
    env.log_path.rmdir()
    env.log_path.symlink_to(env.dir / "elsewhere.jsonl")
    with pytest.raises(AuditError, match="cannot open audit log"):
        env.writer().append(decision())
    assert not (env.dir / "elsewhere.jsonl").exists()


def test_readonly_log_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, so chmod does not stop writes: simulate EROFS at open instead.
    env.fill(1)
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any) -> int:
        if str(path) == str(env.log_path) and flags & os.O_RDWR:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args)

    monkeypatch.setattr(log_module.os, "open", fake_open)
    with pytest.raises(AuditError, match="cannot open audit log .*Read-only file system"):
        env.writer().append(decision(1))


def test_checkpoint_renamed_but_dir_fsync_failed_keeps_the_record(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.fill(2)
    real = log_module._fsync_dir
    calls = []

    def flaky(path: Path) -> None:
        calls.append(path)
        if len(calls) == 1:  # the checkpoint's rename is visible, its directory entry maybe not yet durable
            raise OSError(errno.EIO, "Input/output error")
        real(path)

    monkeypatch.setattr(log_module, "_fsync_dir", flaky)
    record = env.writer().append(decision(9))  # removing the record now would make the checkpoint claim too much
    assert record["seq"] == 2
    assert _ok(env).checkpoints[0].size == 3


def test_unconfigured_origin_is_the_logs_own_then_the_keys_name(env: Env) -> None:
    """Issue 12.3: without audit.origin the origin never follows the host name."""
    from gatekeeper.audit.note import Checkpoint, split_note

    def origin() -> str:
        return Checkpoint.parse(split_note(env.log_path.with_name("audit.jsonl.checkpoint").read_bytes())[0]).origin

    AuditLog(env.log_path, signing_key=env.key, origin=None, node="host-1").append({"type": "x"})
    assert origin() == ORIGIN  # the key's name
    env.writer().append({"type": "x"})
    AuditLog(env.log_path, signing_key=env.key, origin="configured.example/audit").append({"type": "x"})
    AuditLog(env.log_path, signing_key=env.key, origin=None, node="renamed-host").append({"type": "x"})
    assert origin() == "configured.example/audit"  # kept, whatever the host is called now
