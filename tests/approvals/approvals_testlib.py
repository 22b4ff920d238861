"""Helpers for the approval tests: real ssh-keygen keys, a trust store, a gated server, and approvals made by the real
``gatekeeper approve`` command (or crafted statements signed by ssh-keygen, for the cases the command refuses to make).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gitserver import REPO_ROOT, Clone, Server, run_git, seed_content

from gatekeeper.approvals.statement import Statement
from gatekeeper.approvals.store import approval_ref
from gatekeeper.push.gitrepo import Repo
from gatekeeper.policy.config import DEFAULT_NAMESPACE

REPOSITORY = "ml/llama-train"


def keygen(directory: Path, name: str) -> Path:
    """A fresh ed25519 key pair; returns the private key path (the .pub sits next to it)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def pub(key: Path) -> str:
    return key.with_name(key.name + ".pub").read_text().strip()


class Trust:
    """Writes the server's allowed_signers (and revoked list) from (person, key, options) entries."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.lines: list[str] = []

    def add(self, person: str, key: Path, options: str = "") -> None:
        opts = options or f'namespaces="{DEFAULT_NAMESPACE}"'
        self.lines.append(f"{person} {opts} {pub(key)}")
        self.write()

    def write(self) -> None:
        (self.server.etc / "allowed_signers").write_text("".join(line + "\n" for line in self.lines))

    def revoke(self, key: Path) -> None:
        revoked = self.server.etc / "revoked_keys"
        revoked.write_text(pub(key) + "\n")
        text = self.server.config.read_text().replace(
            "  allowed_signers: allowed_signers\n",
            "  allowed_signers: allowed_signers\n  revoked_keys: revoked_keys\n")
        self.server.config.write_text(text)


def make_server(root: Path) -> Server:
    srv = Server(root)
    seed_content(srv.clone("seeder"))
    (srv.etc / "audit").mkdir(exist_ok=True)
    srv.write_policy()
    srv.install()
    use_this_checkout(srv)
    return srv


def use_this_checkout(srv: Server) -> None:
    """Make the installed hooks run this checkout's code.

    The shim runs ``python -I -m gatekeeper``, which imports whatever checkout the venv's editable install points at
    (``-I`` ignores PYTHONPATH); a worktree's tests would silently exercise another tree. A wrapper interpreter puts
    this checkout first on ``sys.path`` instead.
    """
    wrapper = srv.root / "python-this-checkout"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# called as: wrapper -I -m gatekeeper ARGS...\n"
        "shift 3\n"
        f"exec {sys.executable} -I -c 'import sys; sys.path.insert(0, {json.dumps(str(REPO_ROOT))}); "
        "from gatekeeper.main import main; raise SystemExit(main())' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    path = srv.bare / "hooks" / "pre-receive"
    text, count = re.subn(r"(?m)^GATEKEEPER_PYTHON=.*$", f"GATEKEEPER_PYTHON={wrapper}", path.read_text())
    assert count == 1, text
    path.write_text(text)
    # post-receive only records outcomes (tests/e2e covers it); dropping it halves the Python starts per push here.
    (srv.bare / "hooks" / "post-receive").unlink(missing_ok=True)


def as_person(clone: Clone, person: str) -> None:
    clone.git("config", "user.name", person)
    clone.git("config", "user.email", f"{person}@example.com")


def gatekeeper(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "gatekeeper", *args], cwd=cwd, env=env, input=input,
                          capture_output=True, text=True, check=False)


def approve(clone: Clone, rev: str, key: Path, person: str, *extra: str, ref: str = "refs/heads/main",
            ok: bool = True) -> subprocess.CompletedProcess[str]:
    # --sign-anyway: these tests make approvals the server must reject (by the pusher, an author, ...); the client's
    # own refusal of those is tested in test_review_screen.py
    proc = gatekeeper("approve", rev, "--ref", ref, "--key", str(key), "--as", person, "--yes", "--sign-anyway",
                      "--repository", REPOSITORY, *extra, cwd=clone.path)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def sign_bytes(data: bytes, key: Path, namespace: str = DEFAULT_NAMESPACE) -> bytes:
    proc = subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", namespace], input=data,
                          capture_output=True, check=True)
    return proc.stdout


def craft(clone: Clone, *, person: str, key: Path, base: str, head: str, ref: str = "refs/heads/main",
          repository: str = REPOSITORY, created: datetime | None = None, expires_in: timedelta = timedelta(days=1),
          namespace: str = DEFAULT_NAMESPACE, statement_edit: object = None, nonce: str = "") -> str:
    """Sign a hand-made statement with ssh-keygen and store it as an approval ref in ``clone``. Returns the ref."""
    import secrets

    repo = Repo.open(clone.path)
    created = (created or datetime.now(timezone.utc)).replace(microsecond=0)
    changes = tuple(repo.diff_trees(repo.commit_tree(base), repo.commit_tree(head)))
    st = Statement(repository=repository, ref=ref, approver=person, base=base, head=head, created=created,
                   expires=created + expires_in, nonce=nonce or secrets.token_hex(16), note="", changes=changes)
    data = st.to_bytes()
    signature = sign_bytes(data, key, namespace)
    if statement_edit is not None:
        data = statement_edit(data)  # type: ignore[operator]
    return store_raw(clone, approval_ref(person, st.nonce), {"approval.json": data, "approval.json.sig": signature})


def store_raw(clone: Clone, ref: str, files: dict[str, bytes], *, parent: str | None = None) -> str:
    lines = []
    for name, content in files.items():
        blob = run_git("hash-object", "-w", "--stdin", cwd=clone.path, input=content).stdout.decode().strip()
        lines.append(f"100644 blob {blob}\t{name}\n")
    tree = run_git("mktree", cwd=clone.path, input="".join(lines).encode()).stdout.decode().strip()
    args = ["commit-tree", tree, "-m", "approval"] + (["-p", parent] if parent else [])
    commit = run_git(*args, cwd=clone.path).stdout.decode().strip()
    run_git("update-ref", ref, commit, cwd=clone.path)
    return ref
