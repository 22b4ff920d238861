"""Evaluator pieces that need neither git nor keys."""

from __future__ import annotations

import subprocess
import sys

from gatekeeper.approvals.evaluate import content_difference
from gatekeeper.model import MODE_ABSENT, MODE_BLOB, MODE_EXEC, Change

A, B, C = "a" * 40, "b" * 40, "c" * 40


def _c(path: bytes, new: str = B, mode: int = MODE_BLOB) -> Change:
    return Change(path, MODE_BLOB, A, mode, new)


def test_content_difference_names_the_first_paths() -> None:
    x, y, z = _c(b"models/x.py"), _c(b"models/y.py"), _c(b"models/z.py")
    assert content_difference({x.path: x}, {x.path: x}) == ""
    assert content_difference({x.path: x}, {x.path: _c(b"models/x.py", C)}) == "models/x.py differs"
    assert content_difference({x.path: x}, {x.path: _c(b"models/x.py", mode=MODE_EXEC)}) == "models/x.py differs"
    assert content_difference({x.path: x}, {x.path: x, y.path: y}) == "models/y.py is not in the approval"
    assert content_difference({x.path: x, y.path: y, z.path: z}, {}) == (
        "models/x.py was approved but is not changed by this push, "
        "models/y.py was approved but is not changed by this push and 1 more")
    gone = Change(b"models/\xff.py", MODE_BLOB, A, MODE_ABSENT, "0" * 40)
    assert content_difference({}, {gone.path: gone}) == "models/\\xff.py is not in the approval"


def test_the_hook_path_imports_no_crypto_or_network_until_needed() -> None:
    code = ("import sys; import gatekeeper.approvals.evaluate; "
            "print(sorted(m for m in ('cryptography', 'requests', 'gatekeeper.trust.allowed_signers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
