#!/usr/bin/env python3
"""The gate against its floors, row by row (issue 13), every floor measured in the same run on this machine.

| row | gate | floor |
|---|---|---|
| small push | whole ``git push`` (1 commit, 3 files) into a repository with the gate | the same push into a twin
  repository whose pre-receive and post-receive are "floor hooks": one Python start + ``import pygit2, yaml`` each |
| many new files | the pre-receive hook on N new files (a new protected branch, no common history), first push: the
  scan cache is emptied before each run (a later run of the same push would only look verdicts up) | ``git rev-list
  --objects NEW --not --all | git cat-file --batch`` (reading every new object once) |
| one big blob | the pre-receive hook on a push of one blob of B bytes; its peak RSS (hook and its children) | ``git
  cat-file --batch`` on the same blob |
| re-push | the hook for ``main`` after the same commits were pushed (and scanned) on a feature branch | ``git diff-tree
  -r`` of the same update (the diff cost) |

For the many-files and re-push rows a second floor adds the fixed start-up no Python hook avoids: the floor hook
(one Python start + ``import pygit2, yaml``, reading stdin) run on the same input, plus the git floor. The gap between
the gate and that sum is the gate's per-file work; the gap between the two floors is start-up.

Timings are the best of several runs (min), which is the least noisy estimate on a shared machine.

    python bench/bench_push.py            # 50,000 files, 1 GiB blob (several minutes)
    python bench/bench_push.py --quick    # 5,000 files, 128 MiB blob, fewer runs
    python bench/bench_push.py --small-only --runs 15   # the small-push row alone
    python bench/bench_push.py --files-only --runs 9    # the many-files and re-push rows alone
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_hook import fast_import_stream, git, setup
from gatekeeper.detectors.scan import CONFIG_NAME_TEST_VERSION
from bench_scan import timed

NULL = "0" * 40
MIB = 1 << 20
# (name, gate s, git floor s, what the floor is, goal ratio, notes, floor hook + git floor s or None)
Row = tuple[str, float, float, str, float, str, float | None]
FLOOR_HOOK = "#!/bin/sh\nexec {python} -I -c 'import sys, pygit2, yaml; sys.stdin.buffer.read()'\n"


def run_hook(bare: Path, stdin: bytes, env: dict[str, str]) -> tuple[float, int, float, float]:
    """(seconds, exit code, peak RSS in MiB of the hook and the processes it ran, their CPU seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(bare / "hooks" / "pre-receive")], cwd=bare, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, proc.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def best_hook(bare: Path, stdin: bytes, env: dict[str, str], runs: int, *,
              before_each: Callable[[], None] | None = None) -> tuple[float, int, float, float]:
    """(best seconds, exit code, peak RSS in MiB, best CPU seconds): CPU time is the steadier figure when others load
    the machine, wall time the one the ratios use."""
    results = []
    for _ in range(runs):
        if before_each is not None:
            before_each()
        results.append(run_hook(bare, stdin, env))
    return min(r[0] for r in results), results[0][1], max(r[2] for r in results), min(r[3] for r in results)


def floor_hook_s(root: Path, bare: Path, stdin: bytes, env: dict[str, str], runs: int) -> float:
    """The floor hook (one Python start + ``import pygit2, yaml``, reading stdin) on the same input: the start-up cost
    any Python hook pays before its first per-file step."""
    path = root / "floor-pre-receive"
    if not path.exists():
        path.write_text(FLOOR_HOOK.format(python=sys.executable))
        path.chmod(0o755)

    def once() -> None:
        subprocess.run([str(path)], cwd=bare, env=env, input=stdin, stdout=subprocess.DEVNULL, check=True)

    return timed(once, runs)


def scan_cache_emptier(root: Path) -> Callable[[], None]:
    """Empties the gate's scan cache (next to the audit log bench_hook.setup configures), so a run is a first push."""
    cache = root / "etc" / "audit" / "scan-cache"
    return lambda: shutil.rmtree(cache, ignore_errors=True)


def shell(cmd: str, cwd: Path) -> None:
    subprocess.run(["sh", "-c", cmd], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def floor_twin(root: Path, gated: Path) -> Path:
    """A copy of the gated repository whose hooks are the floor hooks."""
    twin = root / "floor.git"
    shutil.copytree(gated, twin, symlinks=True)
    for hook in ("pre-receive", "post-receive"):
        path = twin / "hooks" / hook
        path.write_text(FLOOR_HOOK.format(python=sys.executable))
        path.chmod(0o755)
    return twin


def small_push_row(root: Path, bare: Path, env: dict[str, str], runs: int) -> dict[str, float]:
    twin = floor_twin(root, bare)
    work = root / "work"
    gate_s = floor_s = gate_cpu = floor_cpu = float("inf")
    for i in range(runs):
        for rel in ("models/llama/modeling_llama.py", "src/train.py", "README.md"):
            (work / rel).write_text(f"{rel} run {i}\n")
        git("add", "-A", cwd=work)
        git("commit", "-q", "-m", f"small {i}", cwd=work, env=env)
        ref = f"HEAD:refs/heads/feature/small-{i}"
        # Alternate which goes first, so a burst of load hits both alike.
        for target in ((bare, twin) if i % 2 else (twin, bare)):
            before = _children_cpu()
            start = time.perf_counter()
            subprocess.run(["git", "push", "-q", target.as_uri(), ref], cwd=work, env=env, check=True,
                           capture_output=True)
            elapsed = time.perf_counter() - start
            cpu = _children_cpu() - before
            if target == bare:
                gate_s, gate_cpu = min(gate_s, elapsed), min(gate_cpu, cpu)
            else:
                floor_s, floor_cpu = min(floor_s, elapsed), min(floor_cpu, cpu)
    return {"gate_s": gate_s, "floor_s": floor_s, "gate_cpu_s": gate_cpu, "floor_cpu_s": floor_cpu}


def _children_cpu() -> float:
    """CPU seconds (user + system) of the waited-for children so far: git, receive-pack and the hooks. Less disturbed
    by other load than wall time on a shared machine; the index refresher the hook detaches is not counted."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def many_files_row(root: Path, bare: Path, hook_env: dict[str, str], files: int,
                   runs: int) -> tuple[dict[str, float], str]:
    """The row's figures, and the pushed commit (the one-file row builds on it)."""
    subprocess.run(["git", "fast-import", "--quiet"], cwd=bare, input=fast_import_stream(files), check=True)
    new = git("rev-parse", "refs/heads/big", cwd=bare)
    git("update-ref", "-d", "refs/heads/big", cwd=bare)  # objects stay; nothing references them: all are new
    stdin = f"{NULL} {new} refs/heads/release/many\n".encode()
    floor = timed(lambda: shell(f"git rev-list --objects {new} --not --all | git cat-file --batch", bare), runs)
    start_up = floor_hook_s(root, bare, stdin, hook_env, runs)
    gate, code, rss, cpu = best_hook(bare, stdin, hook_env, runs, before_each=scan_cache_emptier(root))
    warm, _, _, _ = best_hook(bare, stdin, hook_env, runs)  # the same push again: verdicts are looked up
    return {"files": files, "gate_s": gate, "floor_s": floor, "floor_hook_s": start_up, "exit": code,
            "rss_mib": rss, "warm_s": warm, "cpu_s": cpu}, new


def one_file_row(root: Path, bare: Path, hook_env: dict[str, str], base: str, runs: int) -> dict[str, float]:
    """A one-file Python change pushed to a protected branch whose tree holds ``base``'s files: what every day's push
    to a big repository's main costs. Each run adds a different file (so each reads the trees it changes, as a real
    push does), with the listings the earlier protected pushes of this bench remembered, and again with none."""
    git("update-ref", "refs/heads/release/big", base, cwd=bare)
    env = dict(os.environ, GIT_INDEX_FILE=str(root / "one-file.index"), GIT_AUTHOR_NAME="b",
               GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@x")
    listings = root / "etc" / "audit" / "scan-cache" / f"tree-listings-{CONFIG_NAME_TEST_VERSION}"
    remembered = listings.read_bytes() if listings.exists() else b""
    stdins = []
    for i in range(2 * runs):
        blob = git("hash-object", "-w", "--stdin", cwd=bare, input=f"value = {i}\n".encode())
        git("read-tree", base, cwd=bare, env=env)
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},models/d00/new_module_{i}.py", cwd=bare, env=env)
        commit = git("commit-tree", git("write-tree", cwd=bare, env=env), "-p", base, "-m", f"one {i}", cwd=bare,
                     env=env)
        stdins.append(f"{base} {commit} refs/heads/release/big\n".encode())
    floor = timed(lambda: shell(f"git diff-tree -r {base} {stdins[0].split()[1].decode()}", bare), runs)
    start_up = floor_hook_s(root, bare, stdins[0], hook_env, runs)
    with_listings, without = [], []
    for i in range(runs):
        listings.write_bytes(remembered)
        listings.chmod(0o600)
        with_listings.append(run_hook(bare, stdins[2 * i], hook_env))
        listings.unlink()
        without.append(run_hook(bare, stdins[2 * i + 1], hook_env))
    return {"gate_s": min(r[0] for r in with_listings), "floor_s": floor, "floor_hook_s": start_up,
            "exit": with_listings[0][1], "cpu_s": min(r[3] for r in with_listings),
            "cold_s": min(r[0] for r in without), "remembered": float(bool(remembered))}


def big_blob_row(root: Path, bare: Path, hook_env: dict[str, str], size: int, runs: int) -> dict[str, float]:
    path = root / "weights.bin"
    with open(path, "wb") as fh:  # weights-like: a stored (uncompressed-zip-like) stream that zlib barely shrinks
        block = os.urandom(MIB)
        for i in range(size // MIB):
            fh.write(block[i % 4093:] + block[:i % 4093])
    start = time.perf_counter()
    blob = git("hash-object", "-w", str(path), cwd=bare)
    write_s = time.perf_counter() - start
    path.unlink()
    tree = git("mktree", cwd=bare, input=f"100644 blob {blob}\tweights.bin\n".encode())
    commit = git("commit-tree", tree, "-m", "weights", cwd=bare,
                 env=dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@x", GIT_COMMITTER_NAME="b",
                          GIT_COMMITTER_EMAIL="b@x"))
    stdin = f"{NULL} {commit} refs/heads/feature/weights\n".encode()
    floor = timed(lambda: shell(f"echo {blob} | git cat-file --batch", bare), runs)
    gate, code, rss, _ = best_hook(bare, stdin, hook_env, runs)
    return {"bytes": size, "gate_s": gate, "floor_s": floor, "exit": code, "rss_mib": rss, "hash_object_s": write_s}


def repush_row(root: Path, bare: Path, hook_env: dict[str, str], files: int, runs: int) -> dict[str, float]:
    """Content first pushed (and scanned) on a feature branch, then the same commit pushed to main."""
    stream = (fast_import_stream(files).replace(b"commit refs/heads/big\n", b"commit refs/heads/feature/repush\n", 1)
              .replace(b"data 4\nbig\n", b"data 4\nbig\nfrom refs/heads/main\n", 1))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=bare, input=stream, check=True)
    new = git("rev-parse", "refs/heads/feature/repush", cwd=bare)
    git("update-ref", "-d", "refs/heads/feature/repush", cwd=bare)
    main = git("rev-parse", "refs/heads/main", cwd=bare)
    run_hook(bare, f"{NULL} {new} refs/heads/feature/repush\n".encode(), hook_env)  # first push: scans, caches
    git("update-ref", "refs/heads/feature/repush", new, cwd=bare)  # it landed
    stdin = f"{main} {new} refs/heads/main\n".encode()
    floor = timed(lambda: shell(f"git diff-tree -r {main} {new}", bare), runs)
    start_up = floor_hook_s(root, bare, stdin, hook_env, runs)
    # Each run as the first push to main after the feature branch: no tree listings remembered for the new tree
    # (the feature branch is not protected, so its push listed nothing); the clean-verdict index stays.
    listings = root / "etc" / "audit" / "scan-cache" / f"tree-listings-{CONFIG_NAME_TEST_VERSION}"
    gate, code, _, cpu = best_hook(bare, stdin, hook_env, runs, before_each=lambda: listings.unlink(missing_ok=True))
    return {"files": files, "gate_s": gate, "floor_s": floor, "floor_hook_s": start_up, "exit": code, "cpu_s": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 files, a 128 MiB blob, fewer runs")
    parser.add_argument("--files", type=int)
    parser.add_argument("--blob-mib", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--small-only", action="store_true", help="only the small-push row (for quick comparisons)")
    parser.add_argument("--files-only", action="store_true", help="only the many-files and re-push rows")
    args = parser.parse_args()
    files = args.files or (5_000 if args.quick else 50_000)
    blob = (args.blob_mib or (128 if args.quick else 1024)) * MIB
    runs = args.runs or (5 if args.quick else 11)
    big_runs = max(2, runs // 3)
    root = Path(tempfile.mkdtemp(prefix="gatekeeper-bench-push-"))
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}"
          f", load average {os.getloadavg()[0]:.1f} (shared machine: read ratios, not absolute times)")
    try:
        bare, env = setup(root)
        hook_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_DIR": ".", "GATEKEEPER_USER": "carol"}
        rows: list[Row] = []
        if not args.files_only:
            r = small_push_row(root, bare, env, runs)
            rows.append(("small push, whole git push", r["gate_s"], r["floor_s"], "same push, floor hooks", 1.2,
                         f"CPU {r['gate_cpu_s'] * 1000:.0f} vs {r['floor_cpu_s'] * 1000:.0f} ms = "
                         f"{r['gate_cpu_s'] / r['floor_cpu_s']:.2f}x", None))
        if args.small_only:
            return _print_rows(rows)
        r, base = many_files_row(root, bare, hook_env, files, big_runs)
        rows.append((f"{files:,} new files, hook (first push)", r["gate_s"], r["floor_s"],
                     "rev-list --objects \\| cat-file --batch", 2.0,
                     f"exit {r['exit']}, peak {r['rss_mib']:.0f} MiB, CPU {r['cpu_s'] * 1000:.0f} ms; same push again "
                     f"{r['warm_s'] * 1000:.0f} ms",
                     r["floor_hook_s"] + r["floor_s"]))
        r = one_file_row(root, bare, hook_env, base, runs)
        rows.append((f"one .py added to a protected branch of {files:,} files, hook", r["gate_s"], r["floor_s"],
                     "diff-tree -r", 0.0,
                     f"exit {r['exit']}, CPU {r['cpu_s'] * 1000:.0f} ms; without remembered tree listings "
                     f"{r['cold_s'] * 1000:.0f} ms" + ("" if r["remembered"] else " (none were remembered)"),
                     r["floor_hook_s"] + r["floor_s"]))
        if not args.files_only:
            r = big_blob_row(root, bare, hook_env, blob, big_runs)
            rows.append((f"one {blob // MIB} MiB blob, hook", r["gate_s"], r["floor_s"], "cat-file --batch", 1.5,
                         f"exit {r['exit']}, peak {r['rss_mib']:.0f} MiB (budget 256)", None))
        r = repush_row(root, bare, hook_env, min(files, 5_000), runs)
        rows.append((f"re-push of {r['files']:,} scanned files to main, hook", r["gate_s"], r["floor_s"],
                     "diff-tree -r", 0.0, f"exit {r['exit']}, CPU {r['cpu_s'] * 1000:.0f} ms",
                     r["floor_hook_s"] + r["floor_s"]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return _print_rows(rows)


def _print_rows(rows: list[Row]) -> int:
    print("\n| row | gate | floor | floor is | ratio | floor hook + floor | ratio to it | goal | notes |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for name, gate, floor, what, goal, notes, with_start in rows:
        goal_text = f"<= {goal}x" if goal else "near the diff"
        second = (f"{with_start * 1000:.0f} ms | {gate / with_start:.2f}x" if with_start is not None else "— | —")
        print(f"| {name} | {gate * 1000:.0f} ms | {floor * 1000:.0f} ms | {what} | {gate / floor:.2f}x | {second} | "
              f"{goal_text} | {notes} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
