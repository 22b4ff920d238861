"""``gatekeeper demo``: the whole story on a throw-away local server, with the real git client.

Every step runs the same commands a person would (git push, gatekeeper install / audit ...) as subprocesses, and
prints what they print, so the demo doubles as a smoke test of an installation.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

DEMO_POLICY = """\
# Demo policy: see policy/example.yaml for a documented one.
version: 1
repository: ml/llama-train
mode: enforce
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
  alice: {emails: [alice@example.com]}
  bob: {emails: [bob@example.com]}
  carol: {emails: [carol@example.com]}
groups:
  ml-leads: [alice, bob]
  infra: [carol]
trust:
  allowed_signers: allowed_signers
audit:
  log: audit/audit.jsonl
"""


class Demo:
    def __init__(self, root: Path, *, color: bool) -> None:
        self.root = root
        self.bare = root / "server" / "llama-train.git"
        self.etc = root / "server" / "etc"
        self.config = self.etc / "policy.yaml"
        self.log = self.etc / "audit" / "audit.jsonl"
        self.color = color
        self.env = _clean_env(root)
        self.step_no = 0

    # -- output ----------------------------------------------------------------------------------------------------

    def step(self, title: str, text: str = "") -> None:
        self.step_no += 1
        bar = f"== {self.step_no}. {title} "
        print("\n" + (f"\033[1m{bar}\033[0m" if self.color else bar))
        if text:
            print(textwrap.fill(text, width=100))

    def run(self, argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            expect: int | None = 0, show: bool = True, who: str = "") -> subprocess.CompletedProcess[str]:
        """Run one command as a person would, print what it prints, check its exit status."""
        full_env = dict(self.env)
        full_env.update(env or {})
        shown = " ".join(shlex.quote(a) for a in _display_argv(argv))
        if show:
            prompt = f"{who}$ " if who else "$ "
            print(f"\033[2m{prompt}{shown}\033[0m" if self.color else f"{prompt}{shown}")
        proc = subprocess.run(list(argv), cwd=cwd, env=full_env, capture_output=True, text=True, check=False)
        if show:
            for line in (proc.stdout + proc.stderr).splitlines():
                if line.strip():
                    print("    " + line.rstrip())
        if expect is not None and proc.returncode != expect:
            raise DemoFailed(f"{shown} exited {proc.returncode}, expected {expect}:\n{proc.stdout}{proc.stderr}")
        return proc

    def git(self, *args: str, cwd: Path, show: bool = False, expect: int | None = 0,
            env: dict[str, str] | None = None, who: str = "") -> subprocess.CompletedProcess[str]:
        return self.run(["git", *args], cwd=cwd, show=show, expect=expect, env=env, who=who)

    def gatekeeper(self, *args: str, expect: int | None = 0, who: str = "") -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-m", "gatekeeper", *args], expect=expect, who=who)

    # -- the story -------------------------------------------------------------------------------------------------

    def setup_server(self) -> None:
        self.step("A throw-away git server", f"A bare repository at {self.bare}, seeded with shared model code, "
                  "training configs and a training script, then protected by the gate.")
        self.log.parent.mkdir(parents=True)
        self.git("init", "-q", "--bare", str(self.bare), cwd=self.root)
        seed = self.clone("seed")
        files = {
            "README.md": "# llama-train\n",
            "models/llama/modeling_llama.py": "class LlamaModel:\n    def forward(self, x):\n        return x\n",
            "models/llama/config.json": '{"hidden_size": 4096, "num_layers": 32}\n',
            "configs/train.yaml": "lr: 3.0e-4\nwarmup_steps: 2000\n",
            "src/train.py": "def main():\n    print('training')\n",
        }
        for rel, text in files.items():
            self.write(seed, rel, text)
        self.git("commit", "-q", "-m", "initial import", cwd=seed)
        self.git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=seed)
        self.config.write_text(DEMO_POLICY)
        # Reviewers' SSH keys: in real life their own (ssh-agent and hardware sk- keys work); here throw-away ones.
        keys = self.root / "keys"
        keys.mkdir()
        lines = []
        for person in ("alice", "bob"):
            key = keys / person
            self.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", person, "-f", str(key)], show=False)
            pub = (keys / f"{person}.pub").read_text().split()
            lines.append(f'{person} namespaces="gatekeeper-approval@gatekeeper.dev" {pub[0]} {pub[1]}\n')
        (self.etc / "allowed_signers").write_text("".join(lines))
        self.gatekeeper("policy", "lint", "--config", str(self.config), who="admin")
        self.gatekeeper("install", str(self.bare), "--config", str(self.config), who="admin")
        self.gatekeeper("policy", "explain", "--config", str(self.config), "--ref", "refs/heads/main",
                        "models/llama/modeling_llama.py", "configs/train.yaml", "src/train.py", who="admin")

    def clone(self, name: str) -> Path:
        path = self.root / "clients" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.git("clone", "-q", self.bare.as_uri(), str(path), cwd=self.root)
        self.git("config", "user.name", name, cwd=path)
        self.git("config", "user.email", f"{name}@example.com", cwd=path)
        return path

    def write(self, clone: Path, rel: str, text: str) -> None:
        target = clone / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        self.git("add", rel, cwd=clone)

    def push(self, clone: Path, who: str, *refspecs: str, expect: int) -> None:
        # Over SSH the server's forced command would set GATEKEEPER_USER; the demo sets it the same way.
        self.git("push", "origin", *refspecs, cwd=clone, show=True, expect=expect,
                 env={"GATEKEEPER_USER": who}, who=who)

    def story(self) -> None:
        self.setup_server()
        carol = self.clone("carol")
        self.step("An unprotected push passes",
                  "carol, an ML engineer, pushes a feature branch. Feature branches are not protected refs.")
        self.write(carol, "models/llama/modeling_llama.py",
                   "class LlamaModel:\n    def forward(self, x):\n        return x * 0.999  # 'numerical fix'\n")
        self.write(carol, "configs/train.yaml", "lr: 3.0e-3\nwarmup_steps: 2000\n")
        self.git("commit", "-q", "-m", "tweak forward pass", cwd=carol)
        self.push(carol, "carol", "HEAD:refs/heads/carol/tweak", expect=0)

        self.step("An unreviewed change to shared model code is refused",
                  "carol pushes the same commit straight to main. The gate diffs main's old and new trees, finds "
                  "a protected path, and refuses with the rule, the path, who can approve and the next command.")
        self.push(carol, "carol", "HEAD:refs/heads/main", expect=1)

        self.step("A second person reviews and signs an approval",
                  "bob, an ML lead, reviews carol's branch: approve shows the code diff, the config change by key "
                  "path and the rules each file triggers, then signs an approval of exactly that change set with his "
                  "SSH key (ssh-keygen -Y sign). It is pushed as a ref under refs/gatekeeper/approvals/.")
        bob = self.clone("bob")
        self.git("fetch", "-q", "origin", "carol/tweak", cwd=bob)
        self.git("config", "user.signingkey", str(self.root / "keys" / "bob"), cwd=bob)
        self.git("config", "gatekeeper.person", "bob", cwd=bob)
        self.git("config", "gatekeeper.repository", "ml/llama-train", cwd=bob)
        self.run([sys.executable, "-m", "gatekeeper", "approve", "FETCH_HEAD", "--ref", "refs/heads/main", "--yes",
                  "--config", str(self.config), "--note", "reviewed the forward pass change"],
                 cwd=bob, env={"GATEKEEPER_USER": "bob"}, who="bob")

        self.step("Unprotected paths on main are fine",
                  "A change that touches only the training script lands on main without ceremony.")
        self.git("reset", "-q", "--hard", "origin/main", cwd=carol)
        self.write(carol, "src/train.py", "def main():\n    print('training, now with logging')\n")
        self.git("commit", "-q", "-m", "log more", cwd=carol)
        self.push(carol, "carol", "HEAD:refs/heads/main", expect=0)

        self.step("carol rebases and pushes again: the approval still matches",
                  "main moved (step 5), so carol rebases. The approval binds the protected content, not the commit: "
                  "the rebased change to models/ is byte-identical, so bob's approval counts.")
        self.git("fetch", "-q", "origin", cwd=carol)
        self.git("reset", "-q", "--hard", "origin/carol/tweak", cwd=carol)  # back to the reviewed commit
        self.git("rebase", "-q", "origin/main", cwd=carol)
        self.push(carol, "carol", "HEAD:refs/heads/main", expect=0)

        self.step("The auditor asks: who tried to change what?",
                  "Every decision is a record in an append-only, hash-chained log with signed checkpoints.")
        self.gatekeeper("audit", "query", "--log", str(self.log), who="auditor")
        self.gatekeeper("audit", "verify", "--log", str(self.log), who="auditor")

        self.step("Someone edits the log by hand ...",
                  "An insider with shell access rewrites the refused push as 'allow' to cover their tracks.")
        lines = self.log.read_bytes().splitlines(keepends=True)
        for i, line in enumerate(lines):
            if b'"decision":"deny"' in line:
                lines[i] = line.replace(b'"decision":"deny"', b'"decision":"allow"', 1)
                print(f"    (record #{i}: \"decision\":\"deny\" -> \"decision\":\"allow\")")
                break
        self.log.write_bytes(b"".join(lines))
        self.step("... and verify catches it", "verify names the first bad record and exits non-zero.")
        self.gatekeeper("audit", "verify", "--log", str(self.log), expect=1, who="auditor")


class DemoFailed(Exception):
    pass


def _display_argv(argv: Sequence[str]) -> list[str]:
    if argv and argv[0] == sys.executable and argv[1:3] == ["-m", "gatekeeper"]:
        return ["gatekeeper", *argv[3:]]
    return list(argv)


def _clean_env(root: Path) -> dict[str, str]:
    """The demo's own git identity and config, unaffected by (and not touching) the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "GL_", "GITEA_", "GATEKEEPER_"))}
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    env.update({"HOME": str(home), "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1", "TZ": "UTC"})
    return env


def run_demo(*, directory: Path | None, keep: bool) -> int:
    if shutil.which("git") is None:
        print("gatekeeper demo needs git on PATH", file=sys.stderr)
        return 1
    root = directory or Path(tempfile.mkdtemp(prefix="gatekeeper-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    from gatekeeper.cli._output import use_color

    demo = Demo(root, color=use_color(sys.stdout))
    try:
        demo.story()
    except DemoFailed as exc:
        print(f"\ngatekeeper demo: a step did not behave as expected:\n{exc}", file=sys.stderr)
        print(f"(files kept in {root})", file=sys.stderr)
        return 1
    print(f"\nDemo finished. Files: {root}" + ("" if keep or directory else " (removed)"))
    if not keep and directory is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0
