"""Cost of verifying approvals in-process (numbers printed with ``-s``; bounds are generous, for a shared machine)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from datetime import timezone
from pathlib import Path

from sshsig_testlib import Ed25519Signer
from sshsig_testlib import RsaSigner
from sshsig_testlib import Signer
from sshsig_testlib import armor
from sshsig_testlib import make_sig

from gatekeeper.trust.allowed_signers import AllowedSigners

NS = "review-approval@gate.example.com"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
N = 100


def _bench(signers: list[Signer], label: str) -> float:
    lines = "".join(f"person{i} {s.line()}\n" for i, s in enumerate(signers))
    t0 = time.perf_counter()
    store = AllowedSigners.from_bytes(lines.encode())
    load = time.perf_counter() - t0
    approvals = []
    for i in range(N):
        message = b'{"type":"git-review-approval/v1","n":%d}' % i
        approvals.append((armor(make_sig(signers[i % len(signers)], message, NS)), message))
    t0 = time.perf_counter()
    for text, message in approvals:
        store.verify(text, message, namespace=NS, now=NOW)
    elapsed = time.perf_counter() - t0
    print(f"\n{label}: load {len(signers)} signers {load * 1e3:.1f} ms; verify {N} approvals {elapsed * 1e3:.1f} ms "
          f"({elapsed / N * 1e6:.0f} us each)")
    return elapsed


def test_verify_100_ed25519_approvals() -> None:
    assert _bench([Ed25519Signer() for _ in range(50)], "ed25519") < 2.0


def test_verify_100_rsa3072_approvals() -> None:
    assert _bench([RsaSigner(3072) for _ in range(2)], "rsa-3072") < 3.0


def test_cold_process_import_and_first_verification() -> None:
    """What a hook pays: import (cryptography deferred), load the trust store, verify one approval."""
    signer = Ed25519Signer()
    text = armor(make_sig(signer, b"m", NS))
    code = (
        "import sys, time, datetime\n"
        "t0 = time.perf_counter()\n"
        "import gatekeeper.trust.allowed_signers as a\n"
        "t1 = time.perf_counter()\n"
        "assert 'cryptography' not in sys.modules, 'cryptography imported eagerly'\n"
        "line, text = sys.stdin.read().split('\\0')\n"
        "st = a.AllowedSigners.from_bytes(line.encode())\n"
        f"st.verify(text, b'm', namespace={NS!r}, now=datetime.datetime.now(datetime.timezone.utc))\n"
        "t2 = time.perf_counter()\n"
        "print(f'{(t1 - t0) * 1e3:.1f} {(t2 - t1) * 1e3:.1f}')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=f"p {signer.line()}\n\0{text}", capture_output=True,
                         text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    imp, first = out.stdout.split()
    print(f"\ncold process: import gatekeeper.trust.allowed_signers {imp} ms; first load+verify (imports cryptography) "
          f"{first} ms")
