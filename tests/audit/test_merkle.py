"""RFC 6962 Merkle hashing and proofs (reference B6.11)."""

from __future__ import annotations

import random

import pytest

from gatekeeper.audit.merkle import (
    EMPTY_ROOT, CompactRange, ProofError, consistency_proof, inclusion_proof, leaf_hash, node_hash, root_of,
    verify_consistency, verify_inclusion,
)


def test_rfc6962_fixed_hashes() -> None:
    # transparency-dev/merkle rfc6962 hasher tests
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"L123456").hex() == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert node_hash(b"N123", b"N456").hex() == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"


def test_rfc6962_reference_roots() -> None:
    # The 8-leaf test tree of RFC 6962 implementations (certificate-transparency-go merkletree tests).
    leaves = [leaf_hash(bytes.fromhex(h)) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                                     "606162636465666768696a6b6c6d6e6f")]
    assert root_of(leaves[:1]).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert root_of(leaves[:2]).hex() == "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
    assert root_of(leaves[:3]).hex() == "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
    assert root_of(leaves[:8]).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_compact_range_equals_mth_and_proofs_round_trip() -> None:
    rng = random.Random(7)
    for n in sorted({1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, *rng.sample(range(34, 300), 6)}):
        leaves = [leaf_hash(str(i).encode()) for i in range(n)]
        compact = CompactRange()
        for leaf in leaves:
            compact.append(leaf)
        root = root_of(leaves)
        assert compact.root() == root
        assert len(compact.hashes) == bin(n).count("1")
        for i in rng.sample(range(n), min(n, 5)):
            verify_inclusion(i, n, leaves[i], inclusion_proof(i, leaves), root)
        for m in rng.sample(range(1, n + 1), min(n, 5)):
            verify_consistency(m, n, root_of(leaves[:m]), root, consistency_proof(m, leaves))


def test_bad_proofs_are_rejected() -> None:
    leaves = [leaf_hash(str(i).encode()) for i in range(10)]
    root = root_of(leaves)
    proof = inclusion_proof(3, leaves)
    with pytest.raises(ProofError, match="expected"):
        verify_inclusion(3, 10, leaf_hash(b"other"), proof, root)
    with pytest.raises(ProofError, match="too short"):
        verify_inclusion(3, 10, leaves[3], proof[:-1], root)
    with pytest.raises(ProofError):
        verify_consistency(0, 10, EMPTY_ROOT, root, [])  # from size 0 is an error, as in transparency-dev
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(4, 4, root_of(leaves[:4]), root, [])
    cproof = consistency_proof(6, leaves)
    with pytest.raises(ProofError):
        verify_consistency(6, 10, root_of(leaves[:5]), root, cproof)


def test_extend_builds_the_same_tree_as_appending_one_by_one() -> None:
    rng = random.Random(11)
    for _ in range(200):
        one_by_one, batched = CompactRange(), CompactRange()
        for _ in range(rng.randint(1, 5)):
            n = rng.choice([0, 1, 2, 3, 4, 7, 8, 9, rng.randrange(200)])
            leaves = [leaf_hash(rng.randbytes(8)) for _ in range(n)]
            for leaf in leaves:
                one_by_one.append(leaf)
            batched.extend(b"".join(leaves))
            assert (batched.size, batched.hashes, batched.root()) == (
                one_by_one.size, one_by_one.hashes, one_by_one.root())
    with pytest.raises(ProofError, match="multiple of 32"):
        CompactRange().extend(b"\x00" * 33)
