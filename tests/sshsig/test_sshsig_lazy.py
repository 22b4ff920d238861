"""The verifier keeps the hook's start-up cheap: ``cryptography`` is imported on the first verification, not with the
module; a store of many signers verifies every approval (timings: bench/bench_sshsig.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from datetime import timezone
from pathlib import Path

from sshsig_testlib import Ed25519Signer
from sshsig_testlib import armor
from sshsig_testlib import make_sig

from gatekeeper.trust.allowed_signers import AllowedSigners

NS = "review-approval@gate.example.com"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def test_100_approvals_from_a_store_of_50_signers_all_verify() -> None:
    signers = [Ed25519Signer() for _ in range(50)]
    store = AllowedSigners.from_bytes("".join(f"person{i} {s.line()}\n" for i, s in enumerate(signers)).encode())
    verified: list[tuple[str, ...]] = []
    for i in range(100):
        message = b'{"type":"git-review-approval/v1","n":%d}' % i
        verified.append(store.verify(armor(make_sig(signers[i % 50], message, NS)), message, namespace=NS,
                                     now=NOW).principals)
    assert verified == [(f"person{i % 50}",) for i in range(100)]


def test_cold_process_defers_cryptography_to_the_first_verification() -> None:
    signer = Ed25519Signer()
    text = armor(make_sig(signer, b"m", NS))
    code = (
        "import sys, datetime\n"
        "import gatekeeper.trust.allowed_signers as a\n"
        "assert 'cryptography' not in sys.modules, 'cryptography imported eagerly'\n"
        "line, text = sys.stdin.read().split('\\0')\n"
        "st = a.AllowedSigners.from_bytes(line.encode())\n"
        f"st.verify(text, b'm', namespace={NS!r}, now=datetime.datetime.now(datetime.timezone.utc))\n"
        "print('cryptography' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=f"p {signer.line()}\n\0{text}", capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
