"""Durable file replacement, shared by everything that rewrites a file other processes read (trust store, hook shims,
audit checkpoints): a crash leaves either the old or the new file, never a torn one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (the directory entry lives in the directory, not the file)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(target: Path, data: bytes, *, mode: int) -> None:
    """Replace ``target`` by ``data``: unique temp file beside it, explicit mode (the caller's umask must not decide
    who may read or run it), every byte written, fsync, rename. The temp file is removed on any error. The caller
    fsyncs the directory once after its last rename (:func:`fsync_dir`)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
