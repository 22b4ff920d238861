"""Real git servers for end-to-end tests: a bare repository with the gate installed from this checkout, clones that
commit and push with the real `git` client, and readers for what the hook recorded.

A module with its own name (not ``conftest``): per-directory conftest modules would shadow ``from conftest import``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"

DEFAULT_POLICY = """\
version: 1
repository: ml/llama-train
mode: {mode}
protected_refs: [refs/heads/main, "refs/heads/release/**", "refs/tags/**"]
rules:
  - name: model-code
    paths: ["models/**", "**/modeling_*.py"]
    approvals: 1
    reviewers: [ml-leads]
  - name: training-configs
    paths: ["configs/**"]
    approvals: 1
    reviewers: [ml-leads, infra]
people:
  alice: {{emails: [alice@example.com]}}
  bob: {{emails: [bob@example.com]}}
  carol: {{emails: [carol@example.com]}}
  dave: {{emails: [dave@example.com]}}
groups:
  ml-leads: [alice, bob]
  infra: [carol]
  admins: [dave]
break_glass: [admins]
trust:
  allowed_signers: allowed_signers
audit:
  log: audit/audit.jsonl
"""


def run_git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(["git", *args], cwd=cwd, env=full_env, input=input, capture_output=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout.decode(errors='replace')}\n"
            f"{proc.stderr.decode(errors='replace')}"
        )
    return proc


@dataclass
class PushResult:
    returncode: int
    output: str  # stderr of `git push` (the remote: lines and git's own report)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def remote(self) -> str:
        """The hook's lines as the pusher sees them, without the 'remote: ' prefix and git's padding."""
        lines = [ln[len("remote: "):].rstrip() for ln in self.output.splitlines() if ln.startswith("remote: ")]
        return "\n".join(lines)


class Clone:
    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url

    def git(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
        return run_git(*args, cwd=self.path, env=env, check=check).stdout.decode()

    def write(self, rel: str | bytes, content: str | bytes = "x\n", *, executable: bool = False) -> None:
        raw = rel if isinstance(rel, bytes) else rel.encode()
        target = Path(os.fsdecode(os.fsencode(self.path) + b"/" + raw))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
        if executable:
            target.chmod(0o755)
        run_git("add", "--", os.fsdecode(raw), cwd=self.path)

    def symlink(self, rel: str, target: str) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink() or p.exists():
            p.unlink()
        p.symlink_to(target)
        run_git("add", "--", rel, cwd=self.path)

    def rm(self, rel: str) -> None:
        run_git("rm", "-q", "-r", "--", rel, cwd=self.path)

    def mv(self, src: str, dst: str) -> None:
        (self.path / dst).parent.mkdir(parents=True, exist_ok=True)
        run_git("mv", src, dst, cwd=self.path)

    def commit(self, message: str = "change", *, author: str | None = None) -> str:
        env = {}
        if author:
            env = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author}@example.com",
                   "GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": f"{author}@example.com"}
        run_git("commit", "-q", "--allow-empty", "-m", message, cwd=self.path, env=env)
        return self.head()

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", rev).strip()

    def push(self, *refspecs: str, options: list[str] | None = None, env: dict[str, str] | None = None,
             force: bool = False, atomic: bool = False) -> PushResult:
        args = ["push", "--no-verify"]
        if force:
            args.append("--force")
        if atomic:
            args.append("--atomic")
        for option in options or []:
            args += ["-o", option]
        args.append("origin")
        args += list(refspecs) or ["HEAD:refs/heads/main"]
        proc = run_git(*args, cwd=self.path, env=env, check=False)
        return PushResult(proc.returncode, proc.stderr.decode("utf-8", "replace"))


class Server:
    """A bare repository with the gate installed from this checkout, seeded before install."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bare = root / "llama-train.git"
        self.etc = root / "etc"
        self.etc.mkdir(parents=True, exist_ok=True)
        self.config = self.etc / "policy.yaml"
        self.log = self.etc / "audit" / "audit.jsonl"
        (self.etc / "allowed_signers").write_text("")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        run_git("init", "-q", "--bare", str(self.bare))
        self._clones = 0

    def write_policy(self, text: str | None = None, *, mode: str = "enforce") -> None:
        self.config.write_text(text if text is not None else DEFAULT_POLICY.format(mode=mode))

    def install(self) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "gatekeeper", "install", str(self.bare), "--config", str(self.config)],
            capture_output=True, text=True, check=False, cwd=REPO_ROOT,
        )
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return proc.stdout

    def clone(self, name: str | None = None) -> Clone:
        self._clones += 1
        path = self.root / (name or f"clone{self._clones}")
        run_git("clone", "-q", self.bare.as_uri(), str(path))
        run_git("config", "user.name", "Test Author", cwd=path)
        run_git("config", "user.email", "author@example.com", cwd=path)
        return Clone(path, self.bare.as_uri())

    def records(self) -> list[dict[str, object]]:
        import json

        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def decisions(self) -> list[dict[str, object]]:
        return [r["event"] for r in self.records() if r["event"]["type"] == "push.decision"]  # type: ignore[index]

    def ref(self, name: str) -> str | None:
        proc = run_git("rev-parse", "--verify", "-q", name, cwd=self.bare, check=False)
        return proc.stdout.decode().strip() or None


def seed_content(clone: Clone) -> str:
    clone.write("README.md", "# llama-train\n")
    clone.write("models/llama/modeling.py", "class Llama:\n    pass\n")
    clone.write("models/llama/config.json", '{"hidden_size": 4096}\n')
    clone.write("configs/train.yaml", "lr: 0.001\n")
    clone.write("src/train.py", "print('train')\n")
    sha = clone.commit("initial import")
    result = clone.push("HEAD:refs/heads/main")
    assert result.ok, result.output
    return sha


def run_on_terminal(argv: list[str], *, env: dict[str, str], cwd: Path | None = None,
                    stdout_on_terminal: bool = True) -> tuple[str, str]:
    """Run ``argv`` with stdin and stderr (and stdout, unless told otherwise) on a pseudo-terminal.

    Returns what reached the terminal and, when stdout was not on it, what was written to stdout."""
    import os
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=follower, stderr=follower,
                            stdout=follower if stdout_on_terminal else subprocess.PIPE)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode("utf-8", "replace") if proc.stdout else ""
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace"), out
