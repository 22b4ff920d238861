"""Repository plumbing protected by default: dotfiles, symlinks into protected paths, submodule pointers."""

from __future__ import annotations

import pytest

from gatekeeper.detectors.plumbing import dotfile_kind
from gatekeeper.detectors.scan import implicit_protected_paths
from gatekeeper.model import MODE_ABSENT, MODE_BLOB, MODE_GITLINK, MODE_LINK, Change

NULL = "0" * 40
A, B = "a" * 40, "b" * 40


def protected(path: bytes) -> bool:
    return path.startswith(b"models/")


def change(path: bytes, old_mode: int = MODE_BLOB, new_mode: int = MODE_BLOB) -> Change:
    return Change(path, old_mode, NULL if old_mode == MODE_ABSENT else A, new_mode, NULL if new_mode == MODE_ABSENT
                  else B)


@pytest.mark.parametrize(
    ("path", "kind"),
    [(b".gitattributes", ".gitattributes"), (b"sub/dir/.gitattributes", ".gitattributes"),
     (b".gitmodules", ".gitmodules"), (b".lfsconfig", ".lfsconfig"), (b".GitAttributes", ".gitattributes"),
     (".git\u200cmodules".encode(), ".gitmodules"), (b".gitattributes. ", ".gitattributes"),
     (b"GITMOD~1", ".gitmodules"), (b"gitatt~2", ".gitattributes"),
     (b"gitattributes", None), (b".gitattributes.bak", None), (b"docs/lfsconfig.md", None)],
)
def test_dotfile_recognition(path: bytes, kind: str | None) -> None:
    assert dotfile_kind(path) == kind


def test_dotfiles_are_protected_with_reason_even_when_deleted() -> None:
    changes = [change(b".gitattributes"), change(b"a/.lfsconfig", new_mode=MODE_ABSENT),
               change(b".gitmodules", old_mode=MODE_ABSENT), change(b"README.md")]
    assert implicit_protected_paths(changes, protected) == {
        b".gitattributes": "plumbing: .gitattributes", b"a/.lfsconfig": "plumbing: .lfsconfig",
        b".gitmodules": "plumbing: .gitmodules"}


def test_symlinks_into_protected_paths() -> None:
    blobs = {B: b"../models/weights.bin", A: b"docs/readme.md"}
    into = change(b"tools/w.bin", old_mode=MODE_ABSENT, new_mode=MODE_LINK)
    folder = Change(b"m", MODE_ABSENT, NULL, MODE_LINK, "c" * 40)
    out = Change(b"x", MODE_ABSENT, NULL, MODE_LINK, "d" * 40)
    benign = Change(b"docs/link", MODE_ABSENT, NULL, MODE_LINK, "e" * 40)
    blobs.update({"c" * 40: b"models", "d" * 40: b"/etc/passwd", "e" * 40: b"readme.md"})
    result = implicit_protected_paths([into, folder, out, benign], protected, read_blob=blobs.get)
    assert result == {b"tools/w.bin": "plumbing: symlink into protected path ../models/weights.bin",
                      b"m": "plumbing: symlink into protected path models",
                      b"x": "plumbing: symlink to /etc/passwd leaves the repository"}


def test_symlink_replaced_by_file_checks_the_old_target() -> None:
    # old: symlink into models/, new: regular file -> the link that made models/ content reachable changed
    result = implicit_protected_paths([change(b"w", old_mode=MODE_LINK)], protected,
                                      read_blob={A: b"models/x", B: b"plain"}.get)
    assert result == {b"w": "plumbing: symlink into protected path models/x"}


def test_unreadable_symlink_target_fails_closed() -> None:
    result = implicit_protected_paths([change(b"l", old_mode=MODE_ABSENT, new_mode=MODE_LINK)], protected)
    assert result == {b"l": "plumbing: symlink whose target could not be read"}


def test_submodule_pointer_under_protected_path() -> None:
    changes = [change(b"models/vendor", MODE_GITLINK, MODE_GITLINK), change(b"third_party/x", MODE_GITLINK,
                                                                            MODE_GITLINK)]
    assert implicit_protected_paths(changes, protected) == {
        b"models/vendor": "plumbing: submodule pointer under a protected path"}


def test_read_errors_fail_closed() -> None:
    from gatekeeper.errors import GitAccessError

    def broken(oid: str) -> bytes:
        raise GitAccessError(f"{oid} is not a blob in this repository")

    result = implicit_protected_paths([change(b"l", old_mode=MODE_ABSENT, new_mode=MODE_LINK)], protected,
                                      read_blob=broken)
    assert result == {b"l": "plumbing: symlink whose target could not be read"}
