"""RFC 6962 / RFC 9162 Merkle tree hashing: leaf and node hashes, compact ranges, inclusion and consistency proofs.

Pure and dependency-free (the shape of sigstore's ``_internal/merkle.py``). Definitions (RFC 6962 s2.1):

- ``MTH({}) = SHA-256()``; ``MTH({d0}) = SHA-256(0x00 || d0)`` (leaf hash);
- ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` with ``k`` the largest power of two smaller than ``n``.

A *compact range* for a tree of size ``n`` is the list of roots of the perfect subtrees given by the binary digits of
``n``, biggest (leftmost) first: at most log2(n) hashes are enough to append the next leaf and to compute the root.
The writer keeps it in ``state.json``; the verifier streams the log through one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

# CPython's own SHA-256 for the 65-byte node inputs: OpenSSL 3 spends more on setting up a context per hash than on
# hashing them, so extend() below takes ~20% less time per node with it (the leaves, 700 bytes each, stay on hashlib).
try:
    from _sha256 import sha256 as _node_sha256  # type: ignore[import-not-found]  # no stub for the builtin module
except ImportError:  # pragma: no cover -- a CPython built without its builtin hashes
    _node_sha256 = hashlib.sha256

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof is malformed or does not verify; the message gives expected and calculated values."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves (recursive definition; for tests and small trees)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


class CompactRange:
    """An append-only Merkle accumulator over leaf hashes ``[0, size)``."""

    __slots__ = ("size", "hashes")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != bin(size).count("1") or any(len(h) != HASH_SIZE for h in hashes):
            raise ProofError(f"compact range of size {size} needs {bin(max(size, 0)).count('1')} hashes")
        self.size = size
        self.hashes = list(hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash: merge equal-sized perfect subtrees, as in binary addition."""
        hashes = self.hashes
        size = self.size
        while size & 1:
            leaf = node_hash(hashes.pop(), leaf)
            size >>= 1
        hashes.append(leaf)
        self.size += 1

    def extend(self, leaves: bytes) -> None:
        """Add many leaf hashes at once (``leaves`` is their concatenation): the same tree as :meth:`append` one by
        one, computed a level at a time so each level is one comprehension instead of a Python call per node (verify
        folds a million leaves through here)."""
        if len(leaves) % HASH_SIZE:
            raise ProofError(f"leaves must be a multiple of {HASH_SIZE} bytes, got {len(leaves)}")
        count = len(leaves) // HASH_SIZE
        if not count:
            return
        sha256 = _node_sha256
        hashes = self.hashes
        size = self.size
        carried: list[bytes] = []  # the new compact hash of each level below ``level`` that ends up with one
        level_bits = size
        nodes = leaves  # the pending nodes of the current level, concatenated
        while nodes:
            if level_bits & 1:  # an earlier perfect subtree of this height sits left of the new nodes: merge it
                nodes = hashes.pop() + nodes
            pairs = len(nodes) // (2 * HASH_SIZE)
            if len(nodes) % (2 * HASH_SIZE):  # odd: the rightmost node stays as this level's subtree
                carried.append(nodes[-HASH_SIZE:])
            nodes = b"".join([sha256(b"\x01" + nodes[i:i + 2 * HASH_SIZE]).digest()
                              for i in range(0, pairs * 2 * HASH_SIZE, 2 * HASH_SIZE)])
            level_bits >>= 1
        hashes.extend(reversed(carried))  # higher levels first, as the compact range keeps them
        self.size = size + count

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        acc = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            acc = node_hash(left, acc)
        return acc

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.hashes)


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 s2.1.1 PATH(m, D[n]) for leaf ``index`` in the tree over ``leaves``."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ProofError(f"leaf {index} is not in a tree of size {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return inclusion_proof(index, leaves[:k]) + [root_of(leaves[k:])]
    return inclusion_proof(index - k, leaves[k:]) + [root_of(leaves[:k])]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 s2.1.3.2. Raises :class:`ProofError` if ``leaf`` at ``index`` is not in the tree ``(size, root)``."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below size {size}")
    fn, sn = index, size - 1
    acc = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            acc = node_hash(p, acc)
            if not fn & 1:
                while (fn & 1) == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            acc = node_hash(acc, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if acc != root:
        raise ProofError(f"inclusion proof gives root {acc.hex()}, expected {root.hex()}")


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 s2.1.2 PROOF(m, D[n])."""
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ProofError(f"no consistency proof from size {old_size} to {n}")
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_of(leaves)]
    k = _split(n)
    if m <= k:
        return _subproof(m, leaves[:k], complete) + [root_of(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [root_of(leaves[:k])]


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 s2.1.4.2. Raises :class:`ProofError`; a proof from size 0 is an error (as in transparency-dev)."""
    if old_size == 0 or old_size > new_size:
        raise ProofError(f"no consistency between sizes {old_size} and {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"equal sizes with different roots {old_root.hex()} != {new_root.hex()}")
        return
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself the first node
        path.insert(0, old_root)
    if not path:
        raise ProofError("consistency proof is empty")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while (fn & 1) == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError(f"consistency proof gives old root {fr.hex()}, expected {old_root.hex()}")
    if sr != new_root:
        raise ProofError(f"consistency proof gives new root {sr.hex()}, expected {new_root.hex()}")
