"""orjson is used only where it is byte-identical to the canonical (stdlib) form: proved here over generated records,
and the stdlib fallback gives the same answers with orjson blocked."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from gatekeeper.audit import canonical

_STDLIB = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_ALPHABET = ("abc/._-:{}[],\"\\ \t\n\r\b\f\x00\x01\x1f\x7f\x80\xa0\xe9\u2028\u2029\ufeff\ufffd\U0001f600\u0130\u0131"
             "0123456789eE+.")


def _string(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 12)))


def _value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, 1, -1, 2**31, -(2**53 - 1), 2**53 - 1, rng.randrange(-(2**53 - 1), 2**53)])
    if kind in (2, 3, 4):
        return _string(rng)
    if kind == 5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {"".join(rng.choice("abcXYZ_-.0") for _ in range(rng.randrange(0, 5))): _value(rng, depth + 1)
            for _ in range(rng.randrange(0, 5))}


def _records(n: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [{"v": 1, "seq": i, "ts": "2026-11-25T20:55:01.123456Z", "prev": "0" * 64, "event": _value(rng)}
            for i in range(n)]


def test_orjson_encoding_is_byte_identical_to_the_stdlib_form() -> None:
    assert canonical._load_orjson() is not None and canonical._orjson is not None  # encode() now takes the fast path
    for record in _records(3000):
        assert canonical.encode(record) == _STDLIB.encode(record).encode("utf-8")


def _mutations(line: bytes, rng: random.Random) -> list[bytes]:
    i = rng.randrange(len(line) + 1)
    return [line[:i] + b" " + line[i:], line + b" ", line.replace(b":1,", b":1.0,"), line.replace(b":0,", b":0e0,"),
            line.replace(b'"v":1', b'"v":1,"v":1'), line.replace(b"\xc3\xa9", b"\\u00e9"), line.replace(b"/", b"\\/"),
            line.replace(b'"seq":', b'"seq":-0,"seq":'), line.replace(b"\\u001f", b"\\u001F"), line[:i] + line[i + 1:],
            line.replace(b'"v":1', b'"v":9007199254740992'), line.replace(b'"v":1', b'"\xc3\xa9":1,"v":1')]


def test_fast_and_stdlib_readers_agree_on_canonical_and_mutated_lines() -> None:
    rng = random.Random(3)
    checked = 0
    for record in _records(2000):
        line = canonical.encode(record)
        for candidate in [line, *_mutations(line, rng)]:
            try:
                expected: object = canonical._stdlib_decode(candidate)
            except canonical.CanonicalError:
                expected = "rejected"
            try:
                got: object = canonical.decode_line(candidate)
            except canonical.CanonicalError:
                got = "rejected"
            assert got == expected, candidate
            checked += 1
    assert checked > 20_000


@pytest.mark.parametrize("line", [
    b'{"a":1.5}', b'{"a":[1e5]}', b'{"a":-2E-3,"b":1}', b'{"a":"x\\"","b":1.5}', b'{"a":"\\\\","b":1e5}',
    b'{"a":"\\\\\\"","b":[true,false,0.5]}', b'{"a":"\\u005c","b":2e1}',
])
def test_floats_are_rejected_whatever_the_strings_around_them(line: bytes) -> None:
    with pytest.raises(canonical.CanonicalError, match="float"):
        canonical.decode_line(line)


@pytest.mark.parametrize("line", [b'{"s":"x:1.5,"}', b'{"a":true,"b":false,"c":null}', b'{"s":"e\\"1.5"}',
                                  b'{"s":"2026-01-01T00:00:01.5Z","t":1}'])
def test_float_lookalikes_inside_strings_are_accepted(line: bytes) -> None:
    assert canonical.decode_line(line) == json.loads(line)
    if b"x:1.5," not in line:  # that one looks like a float token even inside its string: the stdlib decides
        assert canonical._fast_decode(line) == json.loads(line)  # timestamps, true/false: the fast path


def test_fallback_without_orjson_gives_the_same_bytes_and_verdicts() -> None:
    records = _records(300, seed=11)
    lines = [canonical.encode(r) for r in records]
    script = (
        "import sys, json; sys.modules['orjson'] = None\n"
        "from gatekeeper.audit import canonical\n"
        "assert canonical._load_orjson() is None and canonical._orjson is None\n"
        "recs = json.loads(sys.stdin.read())\n"
        "out = []\n"
        "for r in recs:\n"
        "    line = canonical.encode(r)\n"
        "    assert canonical.decode_line(line) == r\n"
        "    out.append(line.decode())\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(records), capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert [s.encode() for s in json.loads(proc.stdout)] == lines


def test_float_search_over_a_block_answers_as_line_by_line() -> None:
    """verify asks ``may_hold_float`` once per block of lines and trusts a "no" for every line in it: the block's
    answer must be the "any line" of the per-line answers, whatever sits at the line ends (a match never spans a
    newline)."""
    rng = random.Random(5)
    lines = [canonical.encode(r) for r in _records(400, seed=13)]
    pieces = [b'{"a":1.5}', b'{"a":[1e5]}', b'{"a":-2E-3,"b":1}', b'{"a":1}', b'{"s":"x:1.5,"}', b"1.5,", b":1",
              b".5}", b"{", b"}", b'"', b"", b":0", b"0.", b"e5]", b",-1", b"[2"]
    mutated = []
    for line in lines:
        mutated.append(line)
        mutated.extend(m for m in _mutations(line, rng)[:4])
    mutated.extend(pieces)
    for _ in range(3000):
        block = [rng.choice(mutated) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.3:  # split a float token across the newline: ":1" + "\n" + ".5}" is no float
            block = [rng.choice(pieces) for _ in range(rng.randint(2, 4))]
        joined = b"\n".join(block)
        assert canonical.may_hold_float(joined) == any(map(canonical.may_hold_float, block)), block
    assert not canonical.may_hold_float(b":1\n.5}") and canonical.may_hold_float(b":1.5}\n{")


def test_the_float_free_decoder_is_the_fast_path_minus_the_float_search() -> None:
    fast, float_free = canonical.fast_decoder(), canonical.fast_decoder(float_free=True)
    rng = random.Random(9)
    for record in _records(500, seed=17):
        line = canonical.encode(record)
        for candidate in [line, *_mutations(line, rng)]:
            if not canonical.may_hold_float(candidate):
                assert float_free(candidate) == fast(candidate), candidate


def test_a_process_that_only_writes_never_imports_orjson() -> None:
    """The hooks encode a record per push: the stdlib encoder, without importing orjson (and the uuid and platform it
    imports); the bytes are the same (above)."""
    script = ("import sys; from gatekeeper.audit import canonical; line = canonical.encode({'a': [1, 'x']}); "
              "print(line.decode(), 'orjson' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ['{"a":[1,"x"]}', "False"]
