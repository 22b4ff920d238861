#!/usr/bin/env python3
"""Time the approval side: in-process verification of 100 stored approvals, the pre-receive hook on a small push
to a protected branch that carries one matching approval (vs the floor of starting Python and importing pygit2 and
yaml, DESIGN.md budget 1.5x), and the same hook once 1,000 more approvals are stored (issue 9: its cost must not grow
with the number of stored approvals; they approve the same content for other protected refs, the spread an approver
uses to get past the per-ref cap).

A landed push consumes its approval, so before each timed hook run the approvals ledger is restored (untimed).

Keys and signatures are real (``ssh-keygen -t ed25519``, ``ssh-keygen -Y sign``); the hook runs as git runs it (the
installed shim, cwd = the bare repository, ``<old> <new> <ref>`` on stdin), with this checkout's code.

    python bench/bench_approvals.py [--approvals 100] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_hook import REPO_ROOT, git, measure, setup

from gatekeeper.policy.config import DEFAULT_NAMESPACE


def keygen(directory: Path, name: str) -> Path:
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def use_this_checkout(bare: Path, root: Path) -> None:
    """The shim runs ``python -I -m gatekeeper`` (the venv's installed checkout); run this checkout instead."""
    wrapper = root / "python-this-checkout"
    wrapper.write_text(
        "#!/bin/sh\nshift 3\n"
        f"exec {sys.executable} -I -c 'import sys; sys.path.insert(0, \"{REPO_ROOT}\"); "
        "from gatekeeper.main import main; raise SystemExit(main())' \"$@\"\n")
    wrapper.chmod(0o755)
    for hook in ("pre-receive", "post-receive"):
        path = bare / "hooks" / hook
        text, count = re.subn(r"(?m)^GATEKEEPER_PYTHON=.*$", f"GATEKEEPER_PYTHON={wrapper}", path.read_text())
        assert count == 1, text
        path.write_text(text)


def make_approval(work: Path, *, base: str, head: str, person: str, key: Path, ref: str = "refs/heads/main") -> str:
    from gatekeeper.approvals.create import draft_statement, store_approval
    from gatekeeper.approvals.sign import sign
    from gatekeeper.push.gitrepo import Repo

    st = draft_statement(Repo.open(work), base=base, head=head, ref=ref,  # type: ignore[arg-type]
                         repository="bench/repo", approver=person, expires_in=timedelta(days=1))
    data = st.to_bytes()
    ref, _ = store_approval(work, data, sign(data, key=str(key), namespace=DEFAULT_NAMESPACE))
    return ref


def snapshot(ledger: Path) -> Path:
    saved = ledger.with_name("approvals.saved")
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(ledger, saved)
    return saved


def restore(ledger: Path) -> None:
    shutil.rmtree(ledger)
    shutil.copytree(ledger.with_name("approvals.saved"), ledger)


def measure_landing(shim: Path, runs: int, bare: Path, stdin: bytes, env: dict[str, str],
                    ledger: Path) -> tuple[float, float]:
    """Time the hook on a push it allows, ``runs`` times: each landing consumes the approval, so the ledger is put
    back before every run (outside the timing)."""
    import statistics

    saved = snapshot(ledger)
    samples = []
    for _ in range(runs):
        restore(ledger)
        start = time.perf_counter()
        proc = subprocess.run([str(shim)], cwd=bare, input=stdin, env=env, capture_output=True, check=False)
        samples.append(time.perf_counter() - start)
        assert proc.returncode == 0 and b"push allowed" in proc.stderr, proc.stderr.decode()
    restore(ledger)
    shutil.rmtree(saved)
    return min(samples), statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--approvals", type=int, default=100)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--stored", type=int, default=1000, help="approvals stored for the ratio (default 1000)")
    parser.add_argument("--keep", action="store_true", help="keep the generated repositories (for profiling)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gatekeeper-bench-approvals-"))
    try:
        bare, env = setup(root)
        use_this_checkout(bare, root)
        keys = {name: keygen(root, name) for name in ("alice", "bob")}
        (root / "etc" / "allowed_signers").write_text("".join(
            f'{n} namespaces="{DEFAULT_NAMESPACE}" {(root / (n + ".pub")).read_text()}'
            for n, k in keys.items()))
        work = root / "work"
        main_tip = git("rev-parse", "refs/heads/main", cwd=bare)
        for rel in ("models/llama/modeling_llama.py", "src/train.py", "README.md"):
            (work / rel).write_text(f"{rel} v2\n")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "small", cwd=work, env=env)
        new = git("rev-parse", "HEAD", cwd=work)
        git("push", "-q", bare.as_uri(), "HEAD:refs/heads/incoming", cwd=work)
        shim = bare / "hooks" / "pre-receive"
        hook_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_DIR": ".", "GATEKEEPER_USER": "carol"}
        stdin = f"{main_tip} {new} refs/heads/main\n".encode()
        # the same push before any approval exists: refused, without reading the trust store or verifying
        none_best, _ = measure([str(shim)], args.runs, cwd=bare, stdin=stdin, env=hook_env)
        ref = make_approval(work, base=main_tip, head=new, person="alice", key=keys["alice"])
        git("push", "-q", bare.as_uri(), f"{ref}:{ref}", cwd=work)  # through the hook: validated on the way in

        # -- small push with one approval ----------------------------------------------------------------------
        ledger = bare / "gatekeeper" / "approvals"
        snapshot(ledger)
        check = subprocess.run([str(shim)], cwd=bare, input=stdin, env=hook_env, capture_output=True)
        assert check.returncode == 0, check.stderr.decode()
        assert b"push allowed" in check.stderr, check.stderr.decode()
        restore(ledger)
        floor_best, _ = measure([sys.executable, "-c", "import pygit2, yaml"], args.runs, cwd=bare)
        hook_best, hook_med = measure_landing(shim, args.runs, bare, stdin, hook_env, ledger)

        # -- the same push once --stored more approvals are stored (through the hook, so the ledger has them) ----
        t0 = time.perf_counter()
        spam = [make_approval(work, base=main_tip, head=new, person=("alice", "bob")[i % 2],
                              key=keys[("alice", "bob")[i % 2]], ref=f"refs/heads/release/{i}")
                for i in range(args.stored)]
        stored_s = time.perf_counter() - t0
        refspec = "refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*"
        pushed = subprocess.run(["git", "push", "-q", bare.as_uri(), refspec],
                                cwd=work, capture_output=True, env=dict(os.environ, GATEKEEPER_USER="carol"))
        assert pushed.returncode == 0, pushed.stderr.decode()[-2000:]
        assert len(spam) == args.stored
        many_best, many_med = measure_landing(shim, args.runs, bare, stdin, hook_env, ledger)

        # -- N stored approvals, verified in-process -----------------------------------------------------------
        t0 = time.perf_counter()
        for i in range(args.approvals):
            person = ("alice", "bob")[i % 2]
            make_approval(work, base=main_tip, head=new, person=person, key=keys[person])
        make_s = time.perf_counter() - t0
        from gatekeeper.trust.allowed_signers import AllowedSigners
        from gatekeeper.approvals.evaluate import check_signature
        from gatekeeper.approvals.store import read_approval, stored_approval_refs
        from gatekeeper.push.gitrepo import Repo

        repo = Repo.open(work)
        samples = []
        for _ in range(max(3, args.runs // 5)):
            start = time.perf_counter()
            trust = AllowedSigners.load(root / "etc" / "allowed_signers")
            now = datetime.now(timezone.utc)
            approvals = [read_approval(repo, r, t) for r, t in stored_approval_refs(repo)]
            checked = [check_signature(a, trust, namespace=DEFAULT_NAMESPACE, now=now, people={"alice", "bob"})
                       for a in approvals]
            samples.append(time.perf_counter() - start)
            assert len(checked) == args.approvals + 1 + args.stored, checked[:1]
            assert all(c.problem is None for c in checked), checked[:1]
        verify_best = min(samples)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}")
    print("small push (1 commit, 3 files, protected branch) with one matching approval, best of runs:")
    print(f"  floor: import pygit2, yaml     {floor_best * 1000:8.1f} ms")
    print(f"  pre-receive hook, no approval  {none_best * 1000:8.1f} ms  (refused)")
    print(f"  pre-receive hook               {hook_best * 1000:8.1f} ms  (median {hook_med * 1000:.1f})")
    print(f"  ratio hook / floor             {hook_best / floor_best:8.2f}x   (budget 1.5x)")
    print(f"the same push with {args.stored} more approvals stored (same content, other protected refs), best of runs:")
    print(f"  pre-receive hook               {many_best * 1000:8.1f} ms  (median {many_med * 1000:.1f}; storing "
          f"them took {stored_s:.1f} s)")
    print(f"  ratio {args.stored + 1} stored / 1 stored       {many_best / hook_best:8.2f}x   (goal: about 1x)")
    n = args.approvals + 1 + args.stored
    print(f"{n} stored approvals (ed25519), read + parsed + verified in-process, best of runs:")
    print(f"  total                          {verify_best * 1000:8.1f} ms  ({verify_best / n * 1e6:.0f} us each; "
          f"creating them with ssh-keygen took {make_s:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
