"""The push path never imports the network stack: ``requests`` (and ``urllib3``) belong to ``gatekeeper trust sync``
only (style.md §3: ``requests`` alone would double the hook's start-up floor), and ``psycopg`` to the fleet's
``audit ship``/``--db`` verbs (a policy naming ``audit.database`` does not make the hook connect).

A fresh interpreter imports the hook-path modules and runs a real pre-receive in-process on a tiny repository (a
protected change that is refused for lack of approvals, so policy, platform, git access, content scan, approvals and
the audit log all run), then lists which network modules got imported. A positive control shows the check can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gitserver import REPO_ROOT, run_git

NETWORK_MODULES = ("requests", "urllib3", "http.client", "gatekeeper.hosting.trustsync", "gatekeeper.hosting.forgeapi",
                   # the fleet's database: shipping runs after the push, never inside the hook
                   "psycopg", "gatekeeper.audit.pgstore", "gatekeeper.audit.ship", "gatekeeper.audit.fleet")

POLICY = """\
version: 1
repository: ml/tiny
protected_refs: [refs/heads/main]
rules:
  - name: models
    paths: ["models/**"]
    approvals: 1
    reviewers: [bob]
people:
  alice: {}
  bob: {}
trust:
  allowed_signers: allowed_signers
audit:
  log: audit/audit.jsonl
  database: postgresql://gatekeeper@db.invalid/gatekeeper
"""

PROBE = """\
import json, sys
import gatekeeper.push.hook, gatekeeper.cli.hook, gatekeeper.policy.config, gatekeeper.push.content_gate
import gatekeeper.approvals.evaluate
import gatekeeper.main
from pathlib import Path
stdin = sys.stdin.buffer.read()
env = json.loads(sys.argv[2])
result = gatekeeper.push.hook.run_pre_receive(stdin, env, config=Path(sys.argv[1]))
print(json.dumps({"exit": result.exit_code, "lines": result.lines,
                  "loaded": [m for m in json.loads(sys.argv[3]) if m in sys.modules]}))
"""


def _tiny_push(tmp_path: Path) -> tuple[Path, bytes]:
    bare = tmp_path / "tiny.git"
    run_git("init", "-q", "--bare", str(bare))
    work = tmp_path / "work"
    run_git("init", "-q", str(work))
    (work / "models").mkdir()
    (work / "models" / "net.py").write_text("class Net:\n    pass\n")
    run_git("add", "models/net.py", cwd=work)
    run_git("commit", "-q", "-m", "add a model", cwd=work)
    run_git("push", "-q", str(bare), "HEAD:refs/heads/feature", cwd=work)  # objects in place, main not yet
    sha = run_git("rev-parse", "HEAD", cwd=work).stdout.decode().strip()
    return bare, f"{'0' * 40} {sha} refs/heads/main\n".encode()


def test_the_push_path_imports_no_network_modules(tmp_path: Path) -> None:
    bare, stdin = _tiny_push(tmp_path)
    etc = tmp_path / "etc"
    (etc / "audit").mkdir(parents=True)
    (etc / "policy.yaml").write_text(POLICY)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "bob")], check=True)
    pub = (tmp_path / "bob.pub").read_text().split()
    (etc / "allowed_signers").write_text(f'bob namespaces="gatekeeper-approval@gatekeeper.dev" {pub[0]} {pub[1]}\n')
    hook_env = {"GIT_DIR": str(bare), "GL_USERNAME": "alice", "GL_PROTOCOL": "ssh", "PATH": os.environ["PATH"]}
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(etc / "policy.yaml"), json.dumps(hook_env), json.dumps(NETWORK_MODULES)],
        input=stdin, capture_output=True, cwd=bare, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    # The hook really decided (a refusal for a missing approval, recorded), it did not stop at an early error.
    assert report["exit"] == 1, report["lines"]
    assert "approval" in "\n".join(report["lines"]), report["lines"]
    records = [json.loads(line) for line in (etc / "audit" / "audit.jsonl").read_text().splitlines()]
    assert records[-1]["event"]["decision"] == "deny"
    assert report["loaded"] == []


def test_the_check_can_fail() -> None:
    code = ("import json, sys; import gatekeeper.hosting.trustsync, gatekeeper.audit.fleet, gatekeeper.audit.ship, "
            "psycopg; "
            f"print(json.dumps([m for m in {NETWORK_MODULES!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}).stdout
    assert json.loads(out) == list(NETWORK_MODULES)


def test_the_trust_verb_imports_requests_only_when_it_runs() -> None:
    code = ("import sys; from gatekeeper.main import COMMANDS; import importlib; "
            "importlib.import_module(COMMANDS['trust'][0]); print('requests' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}).stdout
    assert out.strip() == "False"


# What the warm pre-receive of a small push never needs (issue 13: every push pays for each import). The compiled
# policy cache replaces yaml and pathspec; the hook reads its own command line without argparse (gettext, locale);
# the stdlib writes the audit record (orjson would import uuid and platform); a loose quarantine is listed without
# starting git (subprocess); nothing is written through tempfile.
WARM_PRE_RECEIVE_NEVER = ("yaml", "pathspec", "argparse", "gettext", "locale", "orjson", "uuid", "platform",
                          "subprocess", "tempfile", "sqlite3", "difflib", "requests")

HOOK_PROBE = """\
import json, sys
from gatekeeper.main import main
code = main(["hook", "pre-receive", "--config", sys.argv[1], "--fallback-log", sys.argv[2]])
print(json.dumps({"exit": code, "loaded": [m for m in json.loads(sys.argv[3]) if m in sys.modules]}))
"""


def _quarantined_small_push(tmp_path: Path) -> tuple[Path, dict[str, str], bytes]:
    """A bare repository and the environment receive-pack gives pre-receive for a new feature branch of one commit
    with three text files, its objects loose in the quarantine."""
    bare, _ = _tiny_push(tmp_path)
    incoming = bare / "objects" / "incoming-probe"
    incoming.mkdir()
    env = {"GIT_DIR": str(bare), "GIT_OBJECT_DIRECTORY": str(incoming), "GIT_QUARANTINE_PATH": str(incoming),
           "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(bare / "objects"), "PATH": os.environ["PATH"],
           "GATEKEEPER_USER": "alice"}
    git_env = {**os.environ, **env, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a",
               "GIT_COMMITTER_EMAIL": "a@x"}
    lines = []
    for name, text in (("modeling_llama.py", "class Llama: pass\n"), ("train.py", "run()\n"), ("README.md", "# x\n")):
        blob = run_git("hash-object", "-w", "--stdin", cwd=bare, input=text.encode(), env=git_env).stdout.decode()
        lines.append(f"100644 blob {blob.strip()}\t{name}\n")
    tree = run_git("mktree", cwd=bare, input="".join(lines).encode(), env=git_env).stdout.decode().strip()
    commit = run_git("commit-tree", tree, "-m", "small", cwd=bare, env=git_env).stdout.decode().strip()
    return bare, env, f"{'0' * 40} {commit} refs/heads/feature/small\n".encode()


def test_the_warm_small_push_imports_only_what_it_needs(tmp_path: Path) -> None:
    bare, env, stdin = _quarantined_small_push(tmp_path)
    etc = tmp_path / "etc"
    (etc / "audit").mkdir(parents=True)
    (etc / "policy.yaml").write_text(POLICY)
    (etc / "allowed_signers").write_text("")
    argv = [sys.executable, "-I", "-c", HOOK_PROBE, str(etc / "policy.yaml"), str(etc / "audit" / "audit.jsonl"),
            json.dumps(WARM_PRE_RECEIVE_NEVER)]
    runs = [subprocess.run(argv, input=stdin, capture_output=True, cwd=bare, env=env, check=False) for _ in range(2)]
    reports = [json.loads(run.stdout) for run in runs]
    assert [r["exit"] for r in reports] == [0, 0], [run.stderr for run in runs]
    assert {"yaml", "pathspec"} <= set(reports[0]["loaded"])  # the cold run parses the policy: the check can fail
    assert reports[1]["loaded"] == []
    assert (etc / "audit" / "policy-cache").is_dir()
