#!/usr/bin/env python3
"""Time the pre-receive hook against its floors, in one run, on this machine.

* small push: one commit, a few files, to a protected branch -> hook wall time vs the floor of starting Python and
  importing pygit2 and yaml (DESIGN.md budget: within 1.5x);
* big push: a generated repository with N files (default 50,000) pushed as a new protected branch with no common
  history (every path is a change) -> hook wall time vs ``git diff-tree -r`` over the same range (budget: within 2x),
  and the hook's peak memory.

The hook is run exactly as git runs it: the installed shim, cwd = the bare repository, ``<old> <new> <ref>`` on stdin.

    python bench/bench_hook.py [--files 50000] [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

POLICY = """\
version: 1
repository: bench/repo
mode: enforce
protected_refs: [refs/heads/main, "refs/heads/release/**"]
rules:
  - name: model-code
    paths: ["models/**", "**/modeling_*.py"]
    approvals: 1
    reviewers: [leads]
  - name: configs
    paths: ["configs/**"]
    approvals: 1
    reviewers: [leads]
people:
  alice: {emails: [alice@example.com]}
  bob: {emails: [bob@example.com]}
groups:
  leads: [alice, bob]
trust:
  allowed_signers: allowed_signers
audit:
  log: audit/audit.jsonl
"""


def git(*args: str, cwd: Path, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=True, env=env)
    return proc.stdout.decode().strip()


def timed(argv: list[str], *, cwd: Path, stdin: bytes = b"", env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, env=env, check=False)
    return time.perf_counter() - start


def measure(argv: list[str], runs: int, **kw: object) -> tuple[float, float]:
    samples = [timed(argv, **kw) for _ in range(runs)]  # type: ignore[arg-type]
    return min(samples), statistics.median(samples)


def child_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def fast_import_stream(n_files: int) -> bytes:
    """A single commit with n files spread over folders (some protected), built with git fast-import."""
    out = [b"commit refs/heads/big\n", b"committer Bench <b@example.com> 1700000000 +0000\n",
           b"data 4\nbig\n"]
    for i in range(n_files):
        top = ("models", "configs", "src", "data", "docs")[i % 5]
        path = f"{top}/d{i % 97:02d}/sub{i % 13}/file_{i}.py".encode()
        body = f"# file {i}\nvalue = {i}\n".encode()
        out.append(b"M 100644 inline " + path + b"\ndata " + str(len(body)).encode() + b"\n" + body + b"\n")
    return b"".join(out)


def weights_stream(n_files: int, size: int) -> bytes:
    """One commit with n distinct weight files: benign protocol-2 pickles (an OrderedDict, as torch.load with
    weights_only=True allows) padded with a BINBYTES-like payload so each is `size` bytes and unique."""
    out = [b"commit refs/heads/weights\n", b"committer Bench <b@example.com> 1700000000 +0000\n", b"data 8\nweights\n"]
    for i in range(n_files):
        tag = f"{i:08d}".encode()
        filler = (tag * (size // len(tag) + 1))[: max(0, size - 40)]
        # PROTO 2, SHORT_BINBYTES-free protocol-2 form: BINSTRING of the filler, POP, then OrderedDict() and STOP
        body = (b"\x80\x02T" + len(filler).to_bytes(4, "little") + filler + b"0"
                + b"ccollections\nOrderedDict\nq\x00)Rq\x01.")
        path = f"checkpoints/shard_{i:05d}.bin".encode()
        out.append(b"M 100644 inline " + path + b"\ndata " + str(len(body)).encode() + b"\n" + body + b"\n")
    return b"".join(out)


def setup(root: Path) -> tuple[Path, dict[str, str]]:
    bare = root / "repo.git"
    etc = root / "etc"
    (etc / "audit").mkdir(parents=True)
    git("init", "-q", "--bare", str(bare), cwd=root)
    work = root / "work"
    git("init", "-q", "-b", "main", str(work), cwd=root)
    for rel in ("models/llama/modeling_llama.py", "configs/train.yaml", "src/train.py", "README.md"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(f"{rel}\n")
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@x")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "seed", cwd=work, env=env)
    git("push", "-q", bare.as_uri(), "HEAD:refs/heads/main", cwd=work)
    (etc / "policy.yaml").write_text(POLICY)
    (etc / "allowed_signers").write_text("")
    subprocess.run([sys.executable, "-m", "gatekeeper", "install", str(bare), "--config", str(etc / "policy.yaml")],
                   check=True, capture_output=True, cwd=REPO_ROOT)
    return bare, env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gatekeeper-bench-"))
    results: dict[str, object] = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
    }
    try:
        bare, env = setup(root)
        shim = bare / "hooks" / "pre-receive"
        hook_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_DIR": ".", "GATEKEEPER_USER": "carol"}
        main_tip = git("rev-parse", "refs/heads/main", cwd=bare)

        # -- small push: one commit changing a few files (protected and not) on main -----------------------------
        work = root / "work"
        for rel in ("models/llama/modeling_llama.py", "src/train.py", "README.md"):
            (work / rel).write_text(f"{rel} v2\n")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", "small", cwd=work, env=env)
        git("push", "-q", bare.as_uri(), "HEAD:refs/heads/incoming", cwd=work)  # objects present, main unchanged
        new = git("rev-parse", "HEAD", cwd=work)
        small_stdin = f"{main_tip} {new} refs/heads/main\n".encode()
        floor = [sys.executable, "-c", "import pygit2, yaml"]
        floor_best, floor_med = measure(floor, args.runs, cwd=bare)
        hook_best, hook_med = measure([str(shim)], args.runs, cwd=bare, stdin=small_stdin, env=hook_env)
        bare_py_best, _ = measure([sys.executable, "-c", "pass"], args.runs, cwd=bare)
        results["small"] = {
            "python_startup_s": bare_py_best,
            "floor_import_pygit2_yaml_s": floor_best,
            "hook_s": hook_best,
            "hook_median_s": hook_med,
            "ratio_vs_floor": hook_best / floor_best,
        }

        # -- big push: N files as a new protected branch with no history in common -----------------------------
        t0 = time.perf_counter()
        subprocess.run(["git", "fast-import", "--quiet"], cwd=bare, input=fast_import_stream(args.files), check=True)
        gen_s = time.perf_counter() - t0
        big = git("rev-parse", "refs/heads/big", cwd=bare)
        big_stdin = f"{'0' * 40} {big} refs/heads/release/big\n".encode()
        empty = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        runs = max(3, args.runs // 3)
        diff_best, _ = measure(["git", "diff-tree", "-r", "-z", empty, big], runs, cwd=bare)
        rss_before = child_peak_rss_mb()
        big_best, big_med = measure([str(shim)], runs, cwd=bare, stdin=big_stdin, env=hook_env)
        rss_after = child_peak_rss_mb()
        results["big"] = {
            "files": args.files,
            "generate_s": gen_s,
            "git_diff_tree_s": diff_best,
            "hook_s": big_best,
            "hook_median_s": big_med,
            "ratio_vs_diff_tree": big_best / diff_best,
            "peak_rss_mb_children": max(rss_before, rss_after),
        }

        # -- 1,000 weight files (pickles, 64 KiB each) pushed to a feature branch: every one is content-scanned ------
        subprocess.run(["git", "fast-import", "--quiet"], cwd=bare, input=weights_stream(1000, 64 * 1024), check=True)
        weights = git("rev-parse", "refs/heads/weights", cwd=bare)
        w_stdin = f"{'0' * 40} {weights} refs/heads/feature/weights\n".encode()
        w_best, w_med = measure([str(shim)], max(3, args.runs // 3), cwd=bare, stdin=w_stdin, env=hook_env)
        results["weights"] = {"files": 1000, "bytes_each": 64 * 1024, "hook_s": w_best, "hook_median_s": w_med,
                              "ratio_vs_floor": w_best / floor_best}
    finally:
        shutil.rmtree(root, ignore_errors=True)

    small = results["small"]
    bigr = results["big"]
    print(f"machine: {results['machine']}")
    print("small push (1 commit, 3 files, protected branch), best of runs:")
    print(f"  python -c pass                 {small['python_startup_s'] * 1000:8.1f} ms")  # type: ignore[index]
    print(f"  floor: import pygit2, yaml     {small['floor_import_pygit2_yaml_s'] * 1000:8.1f} ms")  # type: ignore[index]
    print(f"  pre-receive hook               {small['hook_s'] * 1000:8.1f} ms  "  # type: ignore[index]
          f"(median {small['hook_median_s'] * 1000:.1f})")  # type: ignore[index]
    print(f"  ratio hook / floor             {small['ratio_vs_floor']:8.2f}x   (budget 1.5x)")  # type: ignore[index]
    print(f"big push ({bigr['files']} files, new protected branch, no common history):")  # type: ignore[index]
    print(f"  git diff-tree -r -z            {bigr['git_diff_tree_s'] * 1000:8.1f} ms")  # type: ignore[index]
    print(f"  pre-receive hook               {bigr['hook_s'] * 1000:8.1f} ms  "  # type: ignore[index]
          f"(median {bigr['hook_median_s'] * 1000:.1f})")  # type: ignore[index]
    print(f"  ratio hook / diff-tree         {bigr['ratio_vs_diff_tree']:8.2f}x   (budget 2x)")  # type: ignore[index]
    print(f"  peak RSS of child processes    {bigr['peak_rss_mb_children']:8.1f} MB")  # type: ignore[index]
    w = results["weights"]
    print("push of 1,000 weight files (64 KiB pickles) to a feature branch, every blob content-scanned:")
    print(f"  pre-receive hook               {w['hook_s'] * 1000:8.1f} ms  (median {w['hook_median_s'] * 1000:.1f})")  # type: ignore[index]
    print(f"  ratio hook / floor             {w['ratio_vs_floor']:8.2f}x")  # type: ignore[index]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
