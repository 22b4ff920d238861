"""Git LFS pointer parsing, as lenient as git-lfs (lfs/pointer.go) and no more."""

from __future__ import annotations

import hashlib

import pytest

from gatekeeper.detectors.lfs import LfsPointer, MalformedPointer, parse_pointer

OID = hashlib.sha256(b"weights").hexdigest()
V1 = "version https://git-lfs.github.com/spec/v1"


def ptr(*lines: str, sep: str = "\n") -> bytes:
    return (sep.join(lines) + sep).encode()


def test_canonical_pointer() -> None:
    assert parse_pointer(ptr(V1, f"oid sha256:{OID}", "size 7")) == LfsPointer(
        "https://git-lfs.github.com/spec/v1", OID, 7)


@pytest.mark.parametrize(
    "data",
    [
        ptr(V1, f"oid sha256:{OID}", "size 7", sep="\r\n"),  # CRLF: bufio.ScanLines drops the \r
        b"  \n\t" + ptr(V1, f"oid sha256:{OID}", "size 7") + b"\n\n  ",  # TrimSpace, blank lines skipped
        ptr("version https://hawser.github.com/spec/v1", f"oid sha256:{OID}", "size 7"),
        ptr("version http://git-media.io/v/2", f"oid sha256:{OID}", "size 7"),
        ptr(V1, "ext-0-foo sha256:" + "1" * 64, f"oid sha256:{OID}", "size 7"),  # extension line between keys
        ptr(V1, f"oid sha256:{OID}", "size +7"),  # strconv.ParseInt accepts a sign
        ptr(V1, f"oid sha256:{OID}", "size 7")[:-1],  # no final newline
    ],
)
def test_quirks_git_lfs_accepts(data: bytes) -> None:
    pointer = parse_pointer(data)
    assert pointer is not None and pointer.oid == OID and pointer.size == 7


@pytest.mark.parametrize(
    "data",
    [
        ptr(f"oid sha256:{OID}", "size 7"),  # missing version line: "expected key version, got oid"
        ptr(V1, "size 7", f"oid sha256:{OID}"),  # key order
        ptr(V1, f"oid sha256:{OID}", "size 7", "extra value"),  # extra line after size
        ptr(V1, f"oid sha256:{OID}", "size 7", "ext-0-foo bar"),  # even an extension line after size
        ptr(V1, f"oid\tsha256:{OID}", "size 7"),  # a tab is not the separator
        b"# how to use git-lfs\nRun git lfs install.\n",  # mentions git-lfs, not a pointer
        b"\x80\x02}q\x00.",  # a pickle
        b"",
        ptr("version ", f"oid sha256:{OID}", "size 7"),  # no git-media|hawser|git-lfs anywhere: matcherRE fails
    ],
)
def test_not_a_pointer_is_scanned_as_content(data: bytes) -> None:
    assert parse_pointer(data) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (ptr(V1, f"oid sha256:{OID.upper()}", "size 7"), "is not 64 lowercase hex digits"),
        (ptr(V1, f"oid sha1:{OID[:40]}", "size 7"), "unsupported oid type 'sha1'"),
        (ptr(V1, f"oid sha256:{OID}", "size -1"), "negative size -1"),
        (ptr(V1, f"oid sha256:{OID}", "size 1_000"), "invalid size '1_000'"),
        (ptr(V1, f"oid sha256:{OID}", "size 9223372036854775808"), "invalid size"),
        (ptr("version https://git-lfs.github.com/spec/v2", f"oid sha256:{OID}", "size 7"), "unknown version"),
        (ptr("version ", "ext-0-git-lfs x", f"oid sha256:{OID}", "size 7"), "missing version"),
    ],
)
def test_malformed_values_are_errors(data: bytes, message: str) -> None:
    with pytest.raises(MalformedPointer, match=message):
        parse_pointer(data)


def test_only_the_first_1024_bytes_count() -> None:
    pointer = ptr(V1, f"oid sha256:{OID}", "size 7")
    # git-lfs smudge reads 1024 bytes and trims white space: trailing padding still decodes
    assert parse_pointer(pointer + b" " * 5000) is not None
    assert parse_pointer(b"\n" * 1100 + pointer) is None
