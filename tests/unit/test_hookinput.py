from __future__ import annotations

import pytest

from gatekeeper.errors import InputError
from gatekeeper.push.hookinput import parse_updates, ref_name_problem
from gatekeeper.model import is_null

A, B = "a" * 40, "b" * 40
Z40, Z64 = "0" * 40, "0" * 64


def test_parses_lines_with_and_without_final_newline() -> None:
    data = f"{Z40} {A} refs/heads/main\n{A} {B} refs/tags/v1".encode()
    ups = parse_updates(data)
    assert [(u.old, u.new, u.ref) for u in ups] == [(Z40, A, "refs/heads/main"), (A, B, "refs/tags/v1")]
    assert parse_updates(b"") == []


def test_sha256_ids_and_null_by_length() -> None:
    ups = parse_updates(f"{Z64} {'c' * 64} refs/heads/x\n".encode())
    assert is_null(ups[0].old) and not is_null(ups[0].new)


@pytest.mark.parametrize(
    "line, message",
    [
        (b"x", "expected '<old> <new> <ref>'"),
        (f"{A} {B}  refs/heads/main".encode(), "expected"),
        (f"{A} {B} refs/heads/main extra".encode(), "expected"),
        (f"{A.upper()} {B} refs/heads/main".encode(), "is not an object id"),
        (f"{A[:39]} {B} refs/heads/main".encode(), "is not an object id"),
        (f"{Z40} {'c' * 64} refs/heads/main".encode(), "differ in length"),
        (f"{A} {B} refs/heads/ma..in".encode(), "bad ref name"),
        (f"{A} {B} refs/heads/a\tb".encode(), "bad ref name"),
        (f"{A} {B} refs/heads/x.lock".encode(), "bad ref name"),
        (f"{A} {B} refs/heads/.hidden".encode(), "bad ref name"),
        (f"{A} {B} main".encode(), "does not start with refs/"),
        (f"{A} {B} refs/heads/".encode() + b"\xff", "not UTF-8"),
        (f"{A} {B} refs/heads/main\r".encode(), "bad ref name"),
    ],
)
def test_malformed_lines_are_refused(line: bytes, message: str) -> None:
    with pytest.raises(InputError, match="line 1") as info:
        parse_updates(line + b"\n")
    assert message in str(info.value)


def test_duplicate_ref_is_refused() -> None:
    with pytest.raises(InputError, match="appears twice"):
        parse_updates(f"{Z40} {A} refs/heads/x\n{A} {B} refs/heads/x\n".encode())


def test_blank_line_in_the_middle_is_refused() -> None:
    with pytest.raises(InputError, match="line 2"):
        parse_updates(f"{Z40} {A} refs/heads/x\n\n{A} {B} refs/heads/y\n".encode())


def test_ref_name_rules() -> None:
    assert ref_name_problem("refs/heads/release/1.0") is None
    assert ref_name_problem("refs/heads/a@{b") is not None
    assert ref_name_problem("refs/heads//a") is not None
    assert ref_name_problem("refs/heads/a b") is not None
