"""Tamper-evident audit log: canonical JSON Lines, hash chain, RFC 6962 Merkle tree and C2SP signed checkpoints.

Modules, each with one job (nothing is imported here, so ``gatekeeper.audit.log`` stays cheap on the hook path):

- ``canonical``: the one byte form of a record (encode, strict decode);
- ``merkle``: RFC 6962 hashing, compact ranges, inclusion/consistency proofs;
- ``note``: C2SP signed notes, vkeys and checkpoints (Ed25519);
- ``keys``: creating and loading the server's signing key;
- ``log``: :class:`~gatekeeper.audit.log.AuditLog`, the appender (flock, one write, fsync, seal);
- ``verify``: :func:`~gatekeeper.audit.verify.verify_log`, the auditor's check;
- ``query``: filtering records, with a derived, rebuildable SQLite index;
- ``export``: a self-contained folder or tarball an auditor verifies offline;
- ``segments``: rotated logs, linked by ``log.segment`` records; ``pairing``: an outcome's decision (``push_id``);
- ``rows``: records as flat table/CSV rows; ``indexer``: the hook's background refresh of the query index.

Design and attack model: ``docs/reference/signatures-and-audit-log.md`` Part B (B3 single-server design, B5 checks).
"""
