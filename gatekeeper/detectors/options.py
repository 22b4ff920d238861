"""What a content verdict depends on besides the bytes: the scan options and the detectors' version. Apart from the
scanner so the push path can key caches and indexes by them without importing it (most pushes are plain text, which
detectors.inert judges on its own)."""

from __future__ import annotations

import hashlib
import json
import mmap
from dataclasses import dataclass

# Bump when a change can alter a verdict: the verdict cache keys on it.
DETECTOR_VERSION = "4"  # 2: the core.autocrlf form of text blobs is judged too; 3: saved_model.pb and archived
# configs are read as pickles too; 4: .npy headers read as numpy reads them (Python 2 "1L", negative shapes, no size
# limit under allow_pickle)

Data = bytes | bytearray | memoryview | mmap.mmap


@dataclass(frozen=True)
class ScanOptions:
    """What the scan allows and how much it may spend (per blob).

    ``profile`` names allow-list profiles from :mod:`pickle_profiles` (``torch``, ``numpy``, ``joblib``, ``none``;
    ``+`` combines them); ``extra_globals`` are ``module.name`` strings a repository allows on top (never over the
    deny list). ``max_bytes`` caps the blob size and ``max_decompressed`` the bytes produced by decompression per
    blob; containers are read by seeking, so a 1 GB checkpoint costs its headers and pickles only.
    """

    profile: str = "torch"
    extra_globals: frozenset[str] = frozenset()
    max_bytes: int = 64 << 30
    max_members: int = 10_000
    max_opcodes: int = 1_000_000
    max_depth: int = 4
    time_budget_s: float = 10.0
    max_decompressed: int = 512 << 20
    max_memo: int = 100_000

    def digest(self) -> str:
        """A stable digest of every field, for cache keys."""
        canon = json.dumps(
            [self.profile, sorted(self.extra_globals), self.max_bytes, self.max_members, self.max_opcodes,
             self.max_depth, self.time_budget_s, self.max_decompressed, self.max_memo],
            separators=(",", ":"),
        )
        return hashlib.sha256(canon.encode()).hexdigest()
