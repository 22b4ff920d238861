"""A blob is not always the file a checkout writes: git converts it on the way out (``convert.c``). Git for Windows
checks out with ``core.autocrlf=true`` (LF -> CRLF for files it deems text), and any ``.gitattributes`` on the branch
can force that for binary files (``text eol=crlf``) or re-encode a file from UTF-8 (``working-tree-encoding``). Each
attack below is a blob the scanner called clean as stored, which a checkout writes as a pickle that runs
``os.system``; the gate now judges the forms a checkout writes, and refuses on every ref."""

from __future__ import annotations

import pytest

from gitserver import Server

from attacks.attacklib import MALICIOUS_PICKLE, Crafter, assert_refused

# Stored: a load returns b"AAAAAAAAAA". With LF -> CRLF the first string's length byte (LF) becomes 13 and swallows
# the header of the string that hides the payload (tests/detectors/test_checkout_forms.py proves it against CPython's
# unpickler and git).
_BODY = b"\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R"
_HIDDEN = b"0" + _BODY + b"."
_PAD = (b"\x8c\xc8" + b"P" * 200 + b"0") * 4
CRLF_SPLIT = b"\x80\x04C\n" + b"A" * 10 + b"C" + bytes([len(_HIDDEN)]) + _HIDDEN + b"0" + _PAD + b"."
# The same with a NUL in the tail: git deems it binary, so only a forced ``text eol=crlf`` converts it.
CRLF_SPLIT_BINARY = CRLF_SPLIT[:-1] + b"C\x03\x00\x00\x000."
# A pickle as checked out with working-tree-encoding=ISO-8859-1: stored as the UTF-8 of its Latin-1 reading.
LATIN1_PICKLE = MALICIOUS_PICKLE.decode("latin-1").encode("utf-8")


def _push_files(server: Server, files: dict[bytes, bytes], ref: str) -> tuple[Crafter, object]:
    x = Crafter(server.clone())
    commit = "HEAD"
    for path, data in files.items():
        commit = x.commit_with(path, "100644", x.blob(data), parent=commit)
    return x, x.push(commit, ref)


def test_stored_blob_is_clean_without_a_conversion(server: Server) -> None:
    """Control: the binary variant alone lands (no attribute forces a conversion, autocrlf leaves binaries alone)."""
    _, result = _push_files(server, {b"weights.pkl": CRLF_SPLIT_BINARY}, "refs/heads/feature/control")
    assert result.ok, result.output  # type: ignore[attr-defined]


def test_autocrlf_checkout_form_is_refused(server: Server) -> None:
    """Before the fix: allowed (no findings)."""
    _, result = _push_files(server, {b"weights.pkl": CRLF_SPLIT}, "refs/heads/feature/crlf")
    assert_refused(server, result, "refs/heads/feature/crlf", None,  # type: ignore[arg-type]
                   "core.autocrlf", "os.system")


@pytest.mark.parametrize("attributes_path", [b".gitattributes", b"models/.gitattributes", b".GITATTRIBUTES"])
def test_forced_eol_crlf_form_is_refused(server: Server, attributes_path: bytes) -> None:
    """Before the fix: allowed."""
    _, result = _push_files(server, {attributes_path: b"*.pkl text eol=crlf\n",
                                     b"models/weights.pkl": CRLF_SPLIT_BINARY}, "refs/heads/feature/eol")
    assert_refused(server, result, "refs/heads/feature/eol", None,  # type: ignore[arg-type]
                   "text eol=crlf", "os.system")


def test_working_tree_encoding_form_is_refused(server: Server) -> None:
    """Before the fix: allowed."""
    _, result = _push_files(server, {b".gitattributes": b"*.pkl working-tree-encoding=ISO-8859-1\n",
                                     b"weights.pkl": LATIN1_PICKLE}, "refs/heads/feature/enc")
    assert_refused(server, result, "refs/heads/feature/enc", None,  # type: ignore[arg-type]
                   "working-tree-encoding=ISO-8859-1", "os.system")


def test_attributes_already_on_the_branch_still_apply(server: Server) -> None:
    """The .gitattributes landed earlier (harmless alone); the blob comes in a later push that does not touch it."""
    x, first = _push_files(server, {b"data/.gitattributes": b"* working-tree-encoding=latin1\n"},
                           "refs/heads/feature/later")
    assert first.ok, first.output  # type: ignore[attr-defined]
    before = server.ref("refs/heads/feature/later")
    x.clone.git("fetch", "-q", "origin", "refs/heads/feature/later")
    commit = x.commit_with(b"data/sub/w.pkl", "100644", x.blob(LATIN1_PICKLE), parent="FETCH_HEAD")
    result = x.push(commit, "refs/heads/feature/later")
    assert_refused(server, result, "refs/heads/feature/later", before, "working-tree-encoding=latin1", "os.system")


def test_unknown_working_tree_encoding_fails_closed(server: Server) -> None:
    _, result = _push_files(server, {b".gitattributes": b"*.pkl working-tree-encoding=X-NO-SUCH-CODEC\n",
                                     b"weights.pkl": b"plain\n"}, "refs/heads/feature/unknown")
    assert_refused(server, result, "refs/heads/feature/unknown", None,  # type: ignore[arg-type]
                   "working-tree-encoding=X-NO-SUCH-CODEC is not an encoding the gate knows")
