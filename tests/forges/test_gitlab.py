"""GitLab (Gitaly custom hooks) end to end: the gate installed into the server-wide ``custom_hooks_dir``, run by a
driver that does what Gitaly does (filtered environment, GL_* variables, no GIT_QUARANTINE_PATH, first failure stops
the chain), real ``git push`` with the GL_* variables set on the client."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from gitserver import run_git

from forges.forgelib import (
    cli, clone_of, decisions, gitlab_env, install_gitaly_driver, remote_lines, seed, this_checkout_python,
    write_policy,
)

# Rails keeps only these lines for the web UI (Gitlab::Git::PreReceiveError, reference §10.3).
GITLAB_SAFE_LINE = re.compile(r"^(GitLab:|GL-HOOK-ERR:)\s*(?P<safe_message>.+)")


@dataclass
class GitLab:
    custom_hooks: Path
    repo: Path
    config: Path
    log: Path
    python: Path

    def run(self, verb: str) -> tuple[int, str, str]:
        return cli(verb, "--gitlab-custom-hooks-dir", str(self.custom_hooks), "--config", str(self.config),
                   "--python", str(self.python))


@pytest.fixture
def gitlab(tmp_path: Path) -> GitLab:
    custom_hooks = tmp_path / "gitaly" / "custom_hooks"
    custom_hooks.mkdir(parents=True)
    repo = tmp_path / "repositories" / "@hashed" / "6b" / "86" / "6b86b273.git"
    run_git("init", "-q", "--bare", str(repo))
    install_gitaly_driver(repo, custom_hooks)
    etc = tmp_path / "etc"
    g = GitLab(custom_hooks, repo, write_policy(etc, "gitlab"), etc / "audit" / "audit.jsonl",
               this_checkout_python(tmp_path))
    seed(clone_of(repo, tmp_path / "seeder"), gitlab_env("dave"))  # before the gate exists
    code, out, err = g.run("install")
    assert code == 0, out + err
    # What the gate receives: a hook sorted before it dumps its environment (Gitaly runs both with the same env).
    dump = custom_hooks / "pre-receive.d" / "00-env"
    dump.write_text(f"#!/bin/sh\nenv > {tmp_path / 'hook-env'}\n")
    dump.chmod(0o755)
    return g


def _change(g: GitLab, tmp_path: Path, path: str, name: str = "c") -> object:
    c = clone_of(g.repo, tmp_path / name)
    c.write(path, "changed = True\n")
    c.commit("change")
    return c


def _assert_every_line_prefixed(lines: list[str]) -> None:
    assert lines
    for line in lines:
        assert line.startswith("GL-HOOK-ERR: "), line
        assert GITLAB_SAFE_LINE.match(line), line


def test_install_writes_the_server_wide_entries(gitlab: GitLab) -> None:
    for hook in ("pre-receive", "post-receive"):
        gate = gitlab.custom_hooks / f"{hook}.d" / "gatekeeper"
        assert gate.stat().st_mode & 0o111
        assert 'echo "GL-HOOK-ERR: gatekeeper: push REFUSED' in gate.read_text()
    assert gitlab.run("doctor") == (
        0, f"doctor: gitlab {gitlab.custom_hooks}: 1 custom hooks directory, 0 updated, 0 without a working gate\n", "")
    assert gitlab.run("sync")[1].endswith(", 0 updated, 0 without a working gate\n")


def test_refusal_is_prefixed_on_every_line_and_read_from_the_gitlab_quarantine(gitlab: GitLab, tmp_path: Path) -> None:
    c = _change(gitlab, tmp_path, "models/llama/modeling.py")
    result = c.push("HEAD:refs/heads/main", env=gitlab_env("dave"))  # type: ignore[attr-defined]
    assert not result.ok
    lines = remote_lines(result)
    _assert_every_line_prefixed(lines)
    assert lines[0].startswith("GL-HOOK-ERR: gatekeeper: push REFUSED (audit record #")
    # The gate read the pushed commit with only GIT_OBJECT_DIRECTORY pointing at the quarantine.
    assert "GL-HOOK-ERR:     modified models/llama/modeling.py" in lines
    env = dict(line.split("=", 1) for line in (tmp_path / "hook-env").read_text().splitlines() if "=" in line)
    assert "GIT_QUARANTINE_PATH" not in env and "GIT_PUSH_OPTION_COUNT" not in env
    assert "incoming-" in env["GIT_OBJECT_DIRECTORY"] and env["GIT_DIR"] == str(gitlab.repo)
    decision = decisions(gitlab.log)[-1]
    assert decision["pusher"] == {"user": "dave", "source": "gitlab:GL_USERNAME", "deploy_key": False}
    assert (decision["platform"], decision["protocol"], decision["repo"]) == ("gitlab", "ssh", "ml/llama-train")


def test_allowed_push_lands_and_its_outcome_is_recorded(gitlab: GitLab, tmp_path: Path) -> None:
    c = _change(gitlab, tmp_path, "src/train.py")
    result = c.push("HEAD:refs/heads/main", env=gitlab_env("dave"))  # type: ignore[attr-defined]
    assert result.ok, result.output
    _assert_every_line_prefixed(remote_lines(result))
    outcome = [r for r in _records(gitlab) if r["type"] == "push.outcome"][-1]
    assert outcome["updates"][0]["new"] == c.head()  # type: ignore[attr-defined,index]


def _records(g: GitLab) -> list[dict[str, object]]:
    from forges.forgelib import records

    return records(g.log)


def test_web_merge_is_gated_like_a_push(gitlab: GitLab, tmp_path: Path) -> None:
    c = _change(gitlab, tmp_path, "configs/train.yaml")
    result = c.push("HEAD:refs/heads/main", env=gitlab_env("alice", protocol="web"))  # type: ignore[attr-defined]
    assert not result.ok
    _assert_every_line_prefixed(remote_lines(result))
    decision = decisions(gitlab.log)[-1]
    assert (decision["protocol"], decision["decision"]) == ("web", "deny")


def test_error_paths_are_prefixed_too(gitlab: GitLab, tmp_path: Path) -> None:
    c = _change(gitlab, tmp_path, "src/train.py")
    # GL_USERNAME went missing (it has happened, gitlab#299431): the pinned platform refuses, with the prefix.
    env = gitlab_env("dave")
    del env["GL_USERNAME"]
    result = c.push("HEAD:refs/heads/main", env=env)  # type: ignore[attr-defined]
    assert not result.ok
    lines = remote_lines(result)
    _assert_every_line_prefixed(lines)
    assert "platform is pinned to 'gitlab'" in lines[0]
    # A broken policy: refused before the platform is even known.
    gitlab.config.write_text("version: 1\nrules: [\n")
    result = c.push("HEAD:refs/heads/main", env=gitlab_env("dave"))  # type: ignore[attr-defined]
    assert not result.ok
    lines = remote_lines(result)
    _assert_every_line_prefixed(lines)
    assert lines[0].startswith("GL-HOOK-ERR: gatekeeper: push REFUSED (audit record #")


def test_approval_refusal_lines_are_prefixed(gitlab: GitLab, tmp_path: Path) -> None:
    c = _change(gitlab, tmp_path, "notes.txt")
    result = c.push("HEAD:refs/gatekeeper/approvals/alice/forged", env=gitlab_env("dave"))  # type: ignore[attr-defined]
    assert not result.ok
    lines = remote_lines(result)
    _assert_every_line_prefixed(lines)
    assert "refs/gatekeeper/approvals/alice/forged" in lines[0]


def test_missing_interpreter_message_is_prefixed(gitlab: GitLab, tmp_path: Path) -> None:
    c = _change(gitlab, tmp_path, "src/train.py")
    gitlab.python.rename(gitlab.python.with_name("moved"))
    result = c.push("HEAD:refs/heads/main", env=gitlab_env("dave"))  # type: ignore[attr-defined]
    assert not result.ok
    assert remote_lines(result) == [
        f"GL-HOOK-ERR: gatekeeper: push REFUSED: the gate's interpreter {gitlab.python} is missing; an admin must "
        "re-run gatekeeper install"]
    code, _, err = gitlab.run("doctor")
    assert code == 1
    assert f"  pre-receive.d/gatekeeper: interpreter {gitlab.python} is missing or not executable" in err.splitlines()


def test_first_failing_hook_stops_the_chain(gitlab: GitLab, tmp_path: Path) -> None:
    # Gitaly stops at the first failure: a hook sorted before the gate that refuses means the gate never runs (the
    # push is refused all the same, so nothing lands unrecorded).
    deny = gitlab.custom_hooks / "pre-receive.d" / "01-deny"
    deny.write_text("#!/bin/sh\necho 'GL-HOOK-ERR: other policy says no' >&2\nexit 1\n")
    deny.chmod(0o755)
    before = len(decisions(gitlab.log))
    c = _change(gitlab, tmp_path, "src/train.py")
    result = c.push("HEAD:refs/heads/main", env=gitlab_env("dave"))  # type: ignore[attr-defined]
    assert not result.ok
    assert remote_lines(result) == ["GL-HOOK-ERR: other policy says no"]
    assert len(decisions(gitlab.log)) == before


def test_install_refuses_a_directory_gitaly_does_not_have(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    code, _, err = cli("install", "--gitlab-custom-hooks-dir", str(tmp_path / "nope"), "--config",
                       str(write_policy(etc, "gitlab")))
    assert code == 1
    assert err.splitlines()[0] == f"gatekeeper: error: GitLab custom hooks directory {tmp_path / 'nope'} does not exist"


def test_auto_platform_is_warned_about(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    config = write_policy(etc, "auto")
    (tmp_path / "hooks").mkdir()
    code, _, err = cli("install", "--gitlab-custom-hooks-dir", str(tmp_path / "hooks"), "--config", str(config))
    assert code == 0
    assert err.startswith("warning: the policy says platform: auto; pin platform: gitlab")


def test_quiet_sync_and_uninstall(gitlab: GitLab) -> None:
    args = ("--gitlab-custom-hooks-dir", str(gitlab.custom_hooks), "--config", str(gitlab.config),
            "--python", str(gitlab.python))
    assert cli("sync", "--quiet", *args) == (0, "", "")
    (gitlab.custom_hooks / "post-receive.d" / "gatekeeper").unlink()
    code, out, _ = cli("sync", "--quiet", *args)
    assert (code, out.splitlines()[0]) == (0, f"installed {gitlab.custom_hooks}/post-receive.d/gatekeeper")
    code, out, _ = cli("uninstall", "--gitlab-custom-hooks-dir", str(gitlab.custom_hooks))
    assert code == 0 and out.splitlines()[-1] == "uninstall: removed 2 gate file(s) from 1 location(s)"
    assert sorted(p.name for p in (gitlab.custom_hooks / "pre-receive.d").iterdir()) == ["00-env"]


def test_per_project_install_through_a_custom_hooks_folder(gitlab: GitLab, tmp_path: Path) -> None:
    # The README's per-project recipe: install into a staging custom_hooks/ folder, tar it, `gitaly hooks set`. Gitaly
    # unpacks it as <repo>/custom_hooks/; here it is unpacked by hand, and the server-wide gate is removed first.
    assert cli("uninstall", "--gitlab-custom-hooks-dir", str(gitlab.custom_hooks))[0] == 0
    staging = tmp_path / "gk" / "custom_hooks"
    staging.mkdir(parents=True)
    code, out, err = cli("install", "--gitlab-custom-hooks-dir", str(staging), "--config", str(gitlab.config),
                         "--python", str(gitlab.python))
    assert code == 0, out + err
    tarball = tmp_path / "gk" / "hooks.tar"
    subprocess.run(["tar", "-C", str(staging.parent), "-cf", str(tarball), "custom_hooks"], check=True)
    subprocess.run(["tar", "-C", str(gitlab.repo), "-xf", str(tarball)], check=True)
    assert (gitlab.repo / "custom_hooks" / "pre-receive.d" / "gatekeeper").stat().st_mode & 0o111
    c = _change(gitlab, tmp_path, "models/llama/modeling.py")
    result = c.push("HEAD:refs/heads/main", env=gitlab_env("dave"))  # type: ignore[attr-defined]
    assert not result.ok
    _assert_every_line_prefixed(remote_lines(result))
    assert decisions(gitlab.log)[-1]["decision"] == "deny"
