"""verify's fast path (orjson decode + re-encode, one float search per block, primed leaf hasher, CPython SHA-256 for
Merkle nodes) gives exactly the report of the slow path (every line through the stdlib reader, hashlib throughout),
over valid logs and over logs tampered in every way a line can be."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.audit import canonical, merkle
from gatekeeper.audit.merkle import CompactRange
from gatekeeper.audit.verify import VerifyReport, verify_log

from .helpers import Env, rechain as _rechain


def _with_event_field(line: bytes, raw: bytes) -> bytes:
    """The line with ``"zz":<raw>`` as the event's last key (raw bytes: floats, escapes, big ints as written)."""
    body = canonical.encode({**json.loads(line), "event": {**json.loads(line)["event"], "zz": 0}})
    return body.replace(b'"zz":0', b'"zz":' + raw, 1) + b"\n"


def _cases(lines: list[bytes], rng: random.Random, pos: int = 9) -> list[list[bytes]]:
    """The log as written, and tampered in every way a line can be; the tampered line is ``lines[pos]``."""
    def at(i: int, new: bytes, rechain: bool = True) -> list[bytes]:
        out = list(lines)
        out[i] = new if new.endswith(b"\n") else new + b"\n"
        return _rechain(out, i + 1) if rechain else out

    cases = [list(lines), lines[:-3], lines + [b'{"torn'], lines[:pos - 2] + lines[pos - 1:]]
    cases.append(lines[:pos] + [lines[pos + 1], lines[pos]] + lines[pos + 2:])  # two records swapped
    cases.append(lines[:pos + 1] + lines[pos:])  # a record duplicated
    cases.append(_rechain(lines[:pos] + [lines[pos + 1], lines[pos]] + lines[pos + 2:], pos))  # reordered, rechained
    line = lines[pos]
    i = rng.randrange(len(line) - 1)
    cases.append(at(pos, line[:i] + bytes([line[i] ^ 0x01]) + line[i + 1:], rechain=False))  # one edited byte
    rec = json.loads(line)
    reordered = b"{" + b",".join(json.dumps({k: rec[k]}, separators=(",", ":"), ensure_ascii=False).encode()[1:-1]
                                 for k in reversed(sorted(rec))) + b"}"
    cases.append(at(pos, reordered))
    cases.append(at(pos, line.replace(b'":', b'": ', 1)))  # whitespace
    cases.append(at(pos, line.rstrip(b"\n") + b" "))
    for raw in (b"1.5", b"-2E-3", b"1e5", b"[0.5]", b"1e+16", b"100000.0", b'{"a":[1,2.0]}', b"9007199254740992",
                b"-9007199254740993", b"9007199254740991", b'"x:1.5,"', b'"\\u00e9"', b'"\xc3\xa9"', b'"\\/"',
                b'"\\u001F"', b'"\\u001f"', b'"\xe2\x80\xa8"', b'"\\ud800"', b'"\xed\xa0\x80"', b"true", b"null",
                b'"\\"\\\\"', b'{"b":1,"a":2}', b'{"a":1,"a":2}', b"-0", b"01", b'"\x7f"', b'"\xff"', b"[]",
                b'"2026-01-01T00:00:01.5Z"', b'{"\xc3\xa9":1}', b'{"\\u00e9":1}'):
        cases.append(at(pos, _with_event_field(line, raw)))
    cases.append(at(pos, line.replace(b'"v":1', b'"v":1,"v":1')))  # duplicate key
    cases.append(at(pos, line.replace(b'"v":1', b'"v":1.0')))
    cases.append(at(pos, line[: len(line) // 2]))  # truncated line
    cases.append(at(pos, b"\xff" + line))  # invalid UTF-8
    cases.append(at(pos, b"[" + line.rstrip(b"\n") + b"]"))  # not an object
    for edit in (  # canonical lines with a bad record or event
        {"v": True}, {"v": 2}, {"seq": True}, {"seq": str(pos)}, {"seq": pos + 5}, {"ts": "2000-01-01T00:00:00Z"},
        {"ts": 5}, {"node": None}, {"zz": 1}, {"prev": "0" * 64}, {"event": {"type": 5}}, {"event": []},
        {"event": {"type": "recovery", "reason": "x", "bytes": 3, "sha256": "ab"}}, {"event": {"type": "recovery"}},
        {"event": {"type": "push.decision", "decision": "maybe", "repo": "r", "pusher": {}, "updates": []}},
        {"event": {"type": "push.outcome", "repo": "r", "updates": [{"ref": "x", "paths": ["a", 1]}]}},
        {"event": {"type": "push.outcome", "repo": "r", "updates": {}}},
    ):
        cases.append(at(pos, canonical.encode({**json.loads(line), **edit})))
    cases.append(at(pos, canonical.encode({k: v for k, v in json.loads(line).items() if k != "node"})))
    return cases


def _chunks(case: list[bytes], pos: int) -> tuple[int, ...]:
    """Read sizes that put the tampered line in the middle of a block, first in one, last in one, split over two."""
    start, end = sum(map(len, case[:pos])), sum(map(len, case[:pos + 1]))
    return (64 * 1024, 300, start, end, start + 7)


def _key(report: VerifyReport) -> tuple[Any, ...]:
    return (report.errors, report.warnings, report.records, report.root, report.event_types)


def test_fast_and_slow_paths_give_the_same_report(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import gatekeeper.audit.verify as verify_module

    env.fill(24)
    rng = random.Random(21)
    original = env.lines()
    cases = [(pos, case) for pos in (2, 9, 22) for case in _cases(original, rng, pos)]
    assert len(cases) > 150
    for pos, case in cases:
        env.write_lines(case)
        for chunk in _chunks(case, pos):  # one block, many (a float decides per block), the line at block edges
            monkeypatch.setattr(verify_module, "_READ_CHUNK", chunk)
            fast = verify_log(env.log_path, vkeys=[env.vkey], jobs=1)
            with monkeypatch.context() as slow:
                slow.setattr(canonical, "_load_orjson", lambda: None)  # decode_line and fast_decoder: stdlib
                slow.setattr(merkle, "_node_sha256", hashlib.sha256)
                reference = verify_log(env.log_path, vkeys=[env.vkey], jobs=1)
            assert _key(fast) == _key(reference), case
    env.write_lines(original)
    assert verify_log(env.log_path, vkeys=[env.vkey], jobs=1).ok


def test_the_float_shape_is_the_language_it_was() -> None:
    """":00*" for ":0+": the same matches on any input (fuzzed over the translated alphabet and raw bytes)."""
    old = re.compile(rb":0+\.[0.]*:")
    rng = random.Random(4)
    for _ in range(20_000):
        data = bytes(rng.choice(b":0.a\n") for _ in range(rng.randrange(0, 14)))
        assert (old.search(data) is None) == (canonical._FLOAT_SHAPE.search(data) is None), data
        raw = bytes(rng.choice(b'0123456789-+.eE:,[}]"a\n') for _ in range(rng.randrange(0, 14)))
        assert (old.search(raw.translate(canonical._FLOAT_ALPHABET)) is None) == (not canonical.may_hold_float(raw))


def test_node_hashes_match_hashlib(tmp_path: Path) -> None:
    leaves = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(37))
    fast = CompactRange()
    fast.extend(leaves)
    slow = CompactRange()
    for i in range(37):
        slow.append(leaves[i * 32:(i + 1) * 32])
    assert fast.root() == slow.root() and fast.hashes == slow.hashes
    assert merkle._node_sha256(b"\x01" + leaves[:64]).digest() == merkle.node_hash(leaves[:32], leaves[32:64])
