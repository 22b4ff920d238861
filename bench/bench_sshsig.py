#!/usr/bin/env python3
"""Time in-process SSHSIG verification: load a store of signers, verify 100 approvals (ed25519 and RSA-3072), and a
cold process's import plus first verification (which imports ``cryptography``).

Signatures come from the tests' independent SSHSIG writer (tests/sshsig/sshsig_testlib.py). Timings only: the tests
check behaviour (tests/sshsig/test_sshsig_lazy.py).

    python bench/bench_sshsig.py [--approvals 100]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "sshsig"))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from sshsig_testlib import Ed25519Signer, RsaSigner, Signer, armor, make_sig  # noqa: E402

from gatekeeper.trust.allowed_signers import AllowedSigners  # noqa: E402

NS = "review-approval@gate.example.com"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def in_process(signers: list[Signer], label: str, count: int) -> None:
    lines = "".join(f"person{i} {s.line()}\n" for i, s in enumerate(signers))
    t0 = time.perf_counter()
    store = AllowedSigners.from_bytes(lines.encode())
    load = time.perf_counter() - t0
    approvals = []
    for i in range(count):
        message = b'{"type":"git-review-approval/v1","n":%d}' % i
        approvals.append((armor(make_sig(signers[i % len(signers)], message, NS)), message))
    t0 = time.perf_counter()
    for text, message in approvals:
        store.verify(text, message, namespace=NS, now=NOW)
    elapsed = time.perf_counter() - t0
    print(f"{label}: load {len(signers)} signers {load * 1e3:.1f} ms; verify {count} approvals "
          f"{elapsed * 1e3:.1f} ms ({elapsed / count * 1e6:.0f} us each)")


def cold_process() -> None:
    signer = Ed25519Signer()
    text = armor(make_sig(signer, b"m", NS))
    code = (
        "import sys, time, datetime\n"
        "t0 = time.perf_counter()\n"
        "import gatekeeper.trust.allowed_signers as a\n"
        "t1 = time.perf_counter()\n"
        "line, text = sys.stdin.read().split('\\0')\n"
        "st = a.AllowedSigners.from_bytes(line.encode())\n"
        f"st.verify(text, b'm', namespace={NS!r}, now=datetime.datetime.now(datetime.timezone.utc))\n"
        "t2 = time.perf_counter()\n"
        "print(f'{(t1 - t0) * 1e3:.1f} {(t2 - t1) * 1e3:.1f}')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input=f"p {signer.line()}\n\0{text}", capture_output=True,
                         text=True, timeout=60, cwd=REPO_ROOT, check=True)
    imp, first = out.stdout.split()
    print(f"cold process: import gatekeeper.trust.allowed_signers {imp} ms; "
          "first load+verify (imports cryptography) "
          f"{first} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--approvals", type=int, default=100)
    args = parser.parse_args()
    in_process([Ed25519Signer() for _ in range(50)], "ed25519", args.approvals)
    in_process([RsaSigner(3072) for _ in range(2)], "rsa-3072", args.approvals)
    cold_process()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
