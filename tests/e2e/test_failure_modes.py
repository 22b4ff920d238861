"""Fail closed, explain well: broken configs, unwritable logs, crashes, concurrency -- with real pushes."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gitserver import REPO_ROOT, Server, run_git


def _push_src_change(server: Server, name: str = "src/f.py") -> tuple[bool, str]:
    c = server.clone()
    c.write(name, f"{name}\n")
    c.commit("f")
    result = c.push()
    return result.ok, result.remote + "\n" + result.output


@pytest.mark.parametrize(
    "config_text, expected",
    [
        ("version: 1\nrules: [\n", "policy"),  # YAML syntax error
        ("version: 2\n", "version"),
        ("- just\n- a list\n", "policy"),
        ("version: 1\nprotected_refz: [refs/heads/main]\n", "missing required key"),
        ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n", "policy"),
        ("version: 1\nx: !!python/object/apply:os.system ['touch /tmp/pwned-by-gatekeeper-test']\n", "policy"),
    ],
)
def test_broken_and_hostile_configs_refuse_every_push(server: Server, config_text: str, expected: str) -> None:
    server.config.write_text(config_text)
    ok, out = _push_src_change(server)
    assert not ok
    assert "gatekeeper: push REFUSED" in out and expected in out
    assert "Traceback" not in out
    assert not Path("/tmp/pwned-by-gatekeeper-test").exists()
    # recorded in the fallback log that install wrote into the shim
    decision = server.decisions()[-1]
    assert decision["decision"] == "error" and decision["blocked"] is True


def test_missing_config_refuses_and_is_recorded(server: Server) -> None:
    server.config.unlink()
    ok, out = _push_src_change(server)
    assert not ok and "gatekeeper: push REFUSED" in out
    assert server.decisions()[-1]["decision"] == "error"


def test_unwritable_log_refuses_the_push(server: Server) -> None:
    before = server.ref("refs/heads/main")
    server.log.unlink(missing_ok=True)
    server.log.mkdir()  # a directory where the log file should be: every append fails (tests run as root)
    ok, out = _push_src_change(server)
    assert not ok
    assert "could not be written to the audit log" in out or "could not be recorded" in out
    assert server.ref("refs/heads/main") == before


def test_missing_interpreter_refuses_with_a_message(server: Server) -> None:
    shim = server.bare / "hooks" / "pre-receive"
    text = shim.read_text()
    shim.write_text(text.replace(f"GATEKEEPER_PYTHON={sys.executable}", "GATEKEEPER_PYTHON=/nonexistent/python"))
    ok, out = _push_src_change(server)
    assert not ok and "interpreter /nonexistent/python is missing" in out


def test_concurrent_pushes_leave_a_verifiable_chain_without_gaps(server: Server) -> None:
    clones = []
    for i in range(8):
        c = server.clone(f"par{i}")
        c.write(f"src/par{i}.py", f"{i}\n")
        c.commit(f"par {i}")
        clones.append(c)
    results: list[bool] = []

    def push(c: object) -> None:
        results.append(c.push(f"HEAD:refs/heads/par{clones.index(c)}").ok)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=push, args=(c,)) for c in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 8
    seqs = [r["seq"] for r in server.records()]
    assert seqs == list(range(len(seqs)))
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", "audit", "verify", "--log", str(server.log)],
                          capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_torn_log_tail_is_repaired_with_a_recorded_recovery(server: Server) -> None:
    assert _push_src_change(server, "src/one.py")[0]
    with server.log.open("ab") as fh:
        fh.write(b'{"v":1,"seq":99,"half a rec')  # what a kill -9 mid-write leaves behind
    ok, out = _push_src_change(server, "src/two.py")
    assert ok, out
    types = [r["event"]["type"] for r in server.records()]
    assert "recovery" in types
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", "audit", "verify", "--log", str(server.log)],
                          capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_install_chains_a_foreign_hook_is_idempotent_and_uninstall_restores(tmp_path: Path) -> None:
    srv = Server(tmp_path / "srv2")
    seeder = srv.clone("seeder")
    seeder.write("src/a.py", "a\n")
    seeder.commit("seed")
    assert seeder.push().ok
    foreign = srv.bare / "hooks" / "pre-receive"
    foreign.write_text("#!/bin/sh\necho 'legacy hook says no' >&2\nexit 1\n")
    foreign.chmod(0o755)
    srv.write_policy()
    out = srv.install()
    assert "chained" in out
    assert (srv.bare / "hooks" / "pre-receive.pre-gatekeeper").exists()
    srv.install()  # idempotent: no double-chaining, no error
    legacy = "#!/bin/sh\necho 'legacy hook says no' >&2\nexit 1\n"
    assert (srv.bare / "hooks" / "pre-receive.pre-gatekeeper").read_text() == legacy
    ok, text = _push_src_change(srv)
    assert not ok
    assert "legacy hook says no" in text and "chained hook pre-receive.pre-gatekeeper refused" in text
    assert run_git("config", "receive.advertisePushOptions", cwd=srv.bare).stdout.strip() == b"true"
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", "uninstall", str(srv.bare)], capture_output=True,
                          text=True, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "legacy hook says no" in foreign.read_text()
    assert not (srv.bare / "hooks" / "pre-receive.pre-gatekeeper").exists()
    assert not (srv.bare / "hooks" / "post-receive").exists()


def test_install_refuses_a_broken_policy_and_core_hookspath(tmp_path: Path) -> None:
    srv = Server(tmp_path / "srv3")
    srv.config.write_text("version: 1\nrules: [{name: x}]\n")
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", "install", str(srv.bare), "--config", str(srv.config)],
                          capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 1 and "gatekeeper: error:" in proc.stderr
    assert not (srv.bare / "hooks" / "pre-receive").exists()
    srv.write_policy()
    run_git("config", "core.hooksPath", "/somewhere", cwd=srv.bare)
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", "install", str(srv.bare), "--config", str(srv.config)],
                          capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 1 and "core.hooksPath" in proc.stderr
