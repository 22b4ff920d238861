"""The hook's deadline is enforced, not requested: real pushes whose scan outlives ``limits.timeout_seconds`` are
refused and recorded in every mode and every ``scan.unscannable`` setting, and a hook stuck where Python cannot
interrupt it is killed by the watchdog, which records the refusal itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gitserver import DEFAULT_POLICY, REPO_ROOT, Server, run_git


def _slow_pickle(seed: int) -> bytes:
    # ~1M opcodes of protocol 2 (lists of two ints): about 0.3 s each in the emulator, far below its own caps, so
    # only the hook's deadline can stop a push of several of them.
    return b"\x80\x02]" + (b"(K" + bytes([seed % 256]) + b"K\x02e") * 240_000 + b"."


def _policy(mode: str, unscannable: str, timeout: float) -> str:
    return (DEFAULT_POLICY.format(mode=mode)
            + f"scan:\n  unscannable: {unscannable}\nlimits:\n  timeout_seconds: {timeout}\n")


def _audit_verify(server: Server) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatekeeper", "audit", "verify", "--log", str(server.log)],
                          capture_output=True, text=True, cwd=REPO_ROOT, check=False)


@pytest.mark.parametrize("mode", ["enforce", "monitor"])
@pytest.mark.parametrize("unscannable", ["refuse", "review"])
def test_a_push_past_the_deadline_is_refused_and_recorded(server: Server, mode: str, unscannable: str) -> None:
    server.write_policy(_policy(mode, unscannable, 0.5))
    clone = server.clone()
    for i in range(8):  # to an unprotected branch: nothing but the scan's duration can refuse it
        clone.write(f"weights/shard_{i}.pkl", _slow_pickle(i))
    clone.commit("slow to scan")
    before = server.ref("refs/heads/feature")
    result = clone.push("HEAD:refs/heads/feature")
    assert not result.ok
    assert "push REFUSED" in result.remote and "did not finish within 0.5 s" in result.remote
    assert "Traceback" not in result.output
    assert server.ref("refs/heads/feature") == before
    decision = server.decisions()[-1]
    assert decision["decision"] == "error" and decision["blocked"] is True
    assert decision["error"]["type"] == "DeadlineExceeded"  # type: ignore[index]
    assert _audit_verify(server).returncode == 0


def test_the_watchdog_kills_a_hook_stuck_past_the_deadline_and_records_it(server: Server, tmp_path: Path) -> None:
    """A call into C holds the interpreter past the deadline (stood for by blocking SIGALRM and sleeping): the forked
    watchdog SIGKILLs the hook, then writes the refusal record and tells the pusher."""
    server.write_policy(_policy("monitor", "review", 0.5))
    tip = server.ref("refs/heads/main")
    script = tmp_path / "stuck_hook.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys, time
        from pathlib import Path
        from gatekeeper.push import hook

        def stuck(*args, **kwargs):
            signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGALRM}})
            time.sleep(60)

        hook._decide = stuck
        stdin = b"{tip} {tip} refs/heads/main\\n"
        result = hook.run_pre_receive(stdin, dict(os.environ, GIT_DIR={str(server.bare)!r}),
                                      config=Path({str(server.config)!r}))
        print("returned", result.exit_code)
    """))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50, check=False)
    elapsed = time.monotonic() - start
    assert proc.returncode == -9, proc.stderr  # SIGKILL: git refuses a push whose hook died
    assert "returned" not in proc.stdout
    assert elapsed < 20
    assert "push REFUSED" in proc.stderr and "was killed" in proc.stderr
    decision = server.decisions()[-1]
    assert decision["decision"] == "error" and decision["error"]["type"] == "DeadlineExceeded"  # type: ignore[index]
    assert decision["updates"] == [{"ref": "refs/heads/main", "old": tip, "new": tip}]
    assert _audit_verify(server).returncode == 0


def test_the_watchdog_leaves_with_a_hook_that_finishes(server: Server) -> None:
    """A normal push does not wait for the watchdog: it exits as soon as the hook does (no lingering process holds
    the pusher's stderr open until the hard deadline)."""
    server.write_policy(DEFAULT_POLICY.format(mode="enforce") + "limits:\n  timeout_seconds: 30\n")
    clone = server.clone()
    clone.write("src/x.py", "x = 1\n")
    clone.commit("x")
    start = time.monotonic()
    result = clone.push("HEAD:refs/heads/feature")
    assert result.ok, result.output
    assert time.monotonic() - start < 25  # the hard deadline would be 33 s


def test_hook_stdin_is_bounded_before_it_is_read(server: Server) -> None:
    """Hundreds of MiB on stdin: the hook reads one byte over its limit, refuses, and its memory stays small."""
    import os

    line = b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/" + b"x" * 100 + b"\n"
    # Measured from a small intermediate process: a child forked straight from pytest would count pytest's own
    # memory in its peak (the high-water mark survives exec).
    measure = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")
    proc = subprocess.Popen(
        [sys.executable, "-c", measure,
         sys.executable, "-m", "gatekeeper", "hook", "pre-receive", "--config", str(server.config)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=server.bare,
        env=dict(os.environ, GIT_DIR=str(server.bare)),
    )
    assert proc.stdin is not None and proc.stderr is not None
    sent = 0
    try:
        for _ in range(256 * 1024 * 1024 // (len(line) * 4096)):
            proc.stdin.write(line * 4096)
            sent += len(line) * 4096
    except BrokenPipeError:
        pass
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    assert proc.stdout is not None
    err, out = proc.stderr.read(), proc.stdout.read()
    proc.wait()
    assert proc.returncode == 1
    assert "over the 16777216-byte limit" in err.decode()
    peak_kib = int(out.split()[-1])
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib // 1024} MiB"  # KiB on Linux
    assert server.decisions()[-1]["decision"] == "error"
    run_git("rev-parse", "refs/heads/main", cwd=server.bare)



def test_a_slow_index_refresh_after_a_refusal_neither_delays_nor_kills_the_hook(server: Server,
                                                                                 tmp_path: Path) -> None:
    """After a refusal the hook forks a detached indexer. It must not keep the watchdog's pipe open: the hook would
    wait for the indexer on its way out, and an indexer slower than the hard deadline would get the finished hook
    killed and a second, false refusal recorded."""
    server.write_policy(_policy("enforce", "refuse", 0.5))
    clone = server.clone()
    clone.write("models/llama/x.py", "x = 1\n")
    clone.commit("unreviewed model code")
    assert clone.push("HEAD:refs/heads/feature").ok
    old, new = server.ref("refs/heads/main"), server.ref("refs/heads/feature")
    script = tmp_path / "slow_index.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from gatekeeper.audit import query
        from gatekeeper.push import hook

        class SlowIndex:  # stands for a long catch-up on a big log
            def __init__(self, log):
                time.sleep(4)
            def update(self):
                return self
            def close(self):
                pass

        query.Index = SlowIndex
        start = time.monotonic()
        env = dict(os.environ, GIT_DIR={str(server.bare)!r})
        result = hook.run_pre_receive(b"{old} {new} refs/heads/main\\n", env, config=Path({str(server.config)!r}))
        print("returned", result.exit_code, round(time.monotonic() - start, 2))
    """))
    before = len(server.decisions())
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    returned, code, seconds = proc.stdout.split()
    assert (returned, code) == ("returned", "1")
    assert float(seconds) < 1.5  # the hard deadline is 1.5 s; the indexer sleeps 4
    time.sleep(4.5)  # had the watchdog fired, its record would be in by now
    decisions = server.decisions()[before:]
    assert [d["decision"] for d in decisions] == ["deny"], decisions
