"""``audit export``: a self-contained copy of the log an auditor verifies offline, as a folder or a ``.tar.gz``.

Contents: ``audit.jsonl`` (the log, cut at the last complete line), ``audit.jsonl.checkpoint`` (the signed checkpoint
read *before* the log, so the copy always holds at least the records the checkpoint covers even while the server keeps
appending; no lock is needed because the log only grows), ``audit-signing.key.pub`` (the server's vkey, for
convenience only: an auditor pins the key out of band), ``MANIFEST.json`` (sizes and SHA-256 of each file, origin,
tree size and root) and ``README.txt`` with the command to run.

With a selection (a :class:`~gatekeeper.audit.query.Filters`, the same filters as ``audit query``), the whole log is
still exported (only a whole log verifies), plus ``selection.jsonl`` (the matching records, each line byte-identical to
its line in the log, so its leaf hash can be checked against the verified log) and ``selection.csv`` (the same rows as
``audit query --format csv``: every recorded path, nothing truncated); the manifest names the filters.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper.audit.keys import DEFAULT_KEY_NAME, default_key_path, public_path
from gatekeeper.audit.log import sidecar
from gatekeeper.audit.note import Checkpoint, NoteError, split_note
from gatekeeper.errors import AuditError

LOG_NAME = "audit.jsonl"
_CHUNK = 4 * 1024 * 1024

README = """gatekeeper audit log export
===========================

Files: {log} (canonical JSON Lines, hash-chained), {log}.checkpoint (C2SP signed note over the RFC 6962 root),
{pub} (the server's verifier key as shipped; compare it with the key you pinned), MANIFEST.json.

Verify offline (pin the vkey you obtained out of band, and keep the checkpoint of your last audit):

    gatekeeper audit verify --log {log} --vkey '<name+keyid+base64>' --trusted-checkpoint LAST_AUDIT.checkpoint

The checkpoint in this export covers {size} records.
"""


@dataclass(frozen=True)
class ExportResult:
    dest: Path
    records: int
    log_bytes: int
    checkpoint_size: int | None


def _copy_lines(src: Path, dst: Path) -> tuple[int, int, str]:
    """Copy complete lines only; return (records, bytes, sha256)."""
    digest = hashlib.sha256()
    count = 0
    total = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size  # read up to here: later appends are not part of this export
        pending = b""
        remaining = size
        while remaining > 0:
            chunk = fin.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            complete, pending = data[:cut], data[cut:]
            fout.write(complete)
            digest.update(complete)
            count += complete.count(b"\n")
            total += len(complete)
        fout.flush()
        os.fsync(fout.fileno())
    return count, total, digest.hexdigest()


def export_log(log: Path, dest: Path, *, vkey_file: Path | None = None, selection: Any = None) -> ExportResult:
    """Write the export to ``dest``: a new directory, or a tarball if ``dest`` ends in ``.tar.gz``/``.tgz``.

    Raises:
        AuditError: the log is missing, ``dest`` exists, or a file cannot be read or written.
    """
    log, dest = Path(log), Path(dest)
    if not log.is_file():
        raise AuditError(f"audit log {log} does not exist or is not a file", hint="pass the log with --log FILE")
    if dest.exists():
        raise AuditError(f"refusing to overwrite {dest}", hint="choose a new folder or file name")
    tarball = dest.name.endswith((".tar.gz", ".tgz"))
    try:
        with tempfile.TemporaryDirectory(prefix=".audit-export-", dir=dest.parent) as tmp:
            folder = Path(tmp) / (dest.name.split(".tar.gz")[0].removesuffix(".tgz") if tarball else dest.name)
            folder.mkdir()
            result = _fill(log, folder, vkey_file)
            if selection is not None:
                _select(folder, selection)
            if tarball:
                with tarfile.open(dest, "w:gz") as tar:
                    tar.add(folder, arcname=folder.name)
            else:
                folder.rename(dest)
    except OSError as exc:
        raise AuditError(f"cannot export the audit log to {dest}: {exc.strerror or exc}") from None
    return ExportResult(dest, result[0], result[1], result[2])


def _fill(log: Path, folder: Path, vkey_file: Path | None) -> tuple[int, int, int | None]:
    checkpoint_src = sidecar(log, ".checkpoint")
    checkpoint = checkpoint_src.read_bytes() if checkpoint_src.exists() else None  # before the log: see docstring
    records, length, log_sha = _copy_lines(log, folder / LOG_NAME)
    files = {LOG_NAME: {"bytes": length, "sha256": log_sha}}
    size = root = origin = None
    if checkpoint is not None:
        (folder / (LOG_NAME + ".checkpoint")).write_bytes(checkpoint)
        files[LOG_NAME + ".checkpoint"] = {"bytes": len(checkpoint), "sha256": hashlib.sha256(checkpoint).hexdigest()}
        try:
            cp = Checkpoint.parse(split_note(checkpoint)[0])
            size, root, origin = cp.size, cp.root.hex(), cp.origin
        except NoteError:
            pass  # exported as is; verify will say what is wrong with it
    pub = Path(vkey_file) if vkey_file is not None else public_path(default_key_path(log))
    pub_name = DEFAULT_KEY_NAME + ".pub"
    if pub.exists():
        shutil.copyfile(pub, folder / pub_name)
        data = (folder / pub_name).read_bytes()
        files[pub_name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    _add_archive(log, folder, files)
    manifest = {"format": "gatekeeper-audit-export/v1", "records": records, "checkpoint": {
        "origin": origin, "size": size, "root": root}, "files": files}
    (folder / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (folder / "README.txt").write_text(README.format(log=LOG_NAME, pub=pub_name, size=size))
    return records, length, size


def _add_archive(log: Path, folder: Path, files: dict[str, dict[str, object]]) -> None:
    """The policies and trust stores the decisions name (``<log>.archive``), so the export re-verifies alone."""
    from gatekeeper.audit.archive import copy_archive

    for path in copy_archive(log, folder / LOG_NAME):
        data = path.read_bytes()
        files[path.relative_to(folder).as_posix()] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _select(folder: Path, selection: Any) -> None:
    """Write selection.jsonl/.csv from the exported copy (not the live log) and add them to the manifest."""
    from gatekeeper.audit import canonical
    from gatekeeper.audit.query import query_filters
    from gatekeeper.audit.rows import write_csv

    copy = folder / LOG_NAME
    count = 0
    with open(folder / "selection.jsonl", "wb") as out:
        for record in query_filters(copy, selection, index=False):
            out.write(canonical.encode(record) + b"\n")
            count += 1
    with open(folder / "selection.csv", "w", encoding="utf-8", newline="") as out_csv:
        write_csv(query_filters(copy, selection, index=False), out_csv)
    names = ["selection.jsonl", "selection.csv"]
    manifest_path = folder / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text())
    for name in names:
        data = (folder / name).read_bytes()
        manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest["selection"] = {"filters": selection.describe(), "records": count}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
