"""End-to-end: the real `git` client pushes into a real bare repository with the gate installed (file://).

Each test checks what the pusher sees, whether the ref moved, and what was recorded.
"""

from __future__ import annotations

import subprocess
import unicodedata

import pytest

from gitserver import Clone, Server, run_git


def test_unprotected_branch_push_is_allowed_and_recorded(server: Server) -> None:
    c = server.clone()
    c.write("models/llama/modeling.py", "class Llama:\n    evil = True\n")
    sha = c.commit("wip")
    result = c.push("HEAD:refs/heads/feature")
    assert result.ok, result.output
    assert "gatekeeper: push allowed" in result.remote
    assert "refs/heads/feature: allowed (new ref" in result.remote
    assert server.ref("refs/heads/feature") == sha
    decision = server.decisions()[-1]
    assert decision["decision"] == "allow" and decision["blocked"] is False
    assert decision["updates"][0]["protected"] is False


def test_unprotected_path_on_main_is_allowed(server: Server) -> None:
    c = server.clone()
    c.write("src/train.py", "print('faster')\n")
    c.write("README.md", "# docs\n")
    sha = c.commit("docs")
    result = c.push()
    assert result.ok, result.output
    assert "refs/heads/main: allowed" in result.remote
    assert "no protected paths changed" in result.remote
    assert server.ref("refs/heads/main") == sha


def test_protected_path_on_main_is_refused_with_rule_paths_and_next_step(server: Server) -> None:
    c = server.clone()
    before = server.ref("refs/heads/main")
    c.write("models/llama/modeling.py", "class Llama:\n    lr_scale = 1e-9  # sabotage\n")
    c.write("configs/train.yaml", "lr: 0.5\n")
    sha = c.commit("tweak")
    result = c.push()
    assert not result.ok
    out = result.remote
    assert "gatekeeper: push REFUSED (audit record #" in out
    assert "refs/heads/main: needs approval" in out
    assert "rule model-code needs 1 approval from ml-leads" in out
    assert "modified models/llama/modeling.py" in out
    assert "rule training-configs needs 1 approval from ml-leads, infra" in out
    assert "modified configs/train.yaml" in out
    assert f"gatekeeper approve {sha[:12]} --ref refs/heads/main" in out
    assert "pre-receive hook declined" in result.output
    assert server.ref("refs/heads/main") == before
    decision = server.decisions()[-1]
    assert decision["decision"] == "deny" and decision["blocked"] is True
    update = decision["updates"][0]
    assert update["rules"] == ["model-code", "training-configs"]
    assert sorted(update["paths"]) == ["configs/train.yaml", "models/llama/modeling.py"]
    assert decision["pusher"]["source"] == "os:getuid"
    assert decision["repo"] == "ml/llama-train"
    assert len(decision["config_sha256"]) == 64


def _refused(c: Clone, *refspecs: str, force: bool = False) -> str:
    result = c.push(*refspecs, force=force)
    assert not result.ok, result.output
    assert "push REFUSED" in result.remote, result.output
    return result.remote


def test_rename_out_of_protected_folder_is_refused(server: Server) -> None:
    c = server.clone()
    c.mv("models/llama/modeling.py", "src/modeling_moved.txt")
    c.commit("move it out")
    out = _refused(c)
    assert "deleted  models/llama/modeling.py" in out


def test_deleting_a_protected_file_is_refused(server: Server) -> None:
    c = server.clone()
    c.rm("models/llama/config.json")
    c.commit("rm")
    assert "deleted  models/llama/config.json" in _refused(c)


def test_symlink_placed_under_protected_path_is_refused(server: Server) -> None:
    c = server.clone()
    c.symlink("models/llama/weights.bin", "/etc/passwd")
    c.commit("link")
    assert "models/llama/weights.bin" in _refused(c)


def test_symlink_swapping_a_protected_file_is_refused(server: Server) -> None:
    c = server.clone()
    (c.path / "models/llama/modeling.py").unlink()
    c.symlink("models/llama/modeling.py", "../../src/train.py")
    c.commit("swap for a link")
    out = _refused(c)
    # refused outright, not put behind an approval: the link's target has no rule (tests/attacks/test_symlink_escape.py)
    assert "models/llama/modeling.py" in out and "symlink to ../../src/train.py points outside" in out


def test_submodule_placed_under_protected_path_is_refused(server: Server) -> None:
    c = server.clone()
    sha = c.head()
    # a gitlink entry, written straight into the index (what `git submodule add` produces)
    c.git("update-index", "--add", "--cacheinfo", f"160000,{sha},models/vendored")
    c.commit("vendor a submodule")
    out = _refused(c)
    assert "models/vendored" in out and "(submodule)" in out


def test_protected_change_only_inside_a_merge_commit_is_refused(server: Server) -> None:
    c = server.clone()
    base = c.head()
    c.git("checkout", "-q", "-b", "side")
    c.write("src/side.py", "x = 1\n")
    c.commit("side work")
    c.git("checkout", "-q", "main")
    c.write("src/main_work.py", "y = 2\n")
    c.commit("main work")
    assert c.push().ok
    # an "evil merge": the merge commit itself edits a protected file that neither parent touched
    c.git("merge", "-q", "--no-commit", "side")
    (c.path / "models/llama/modeling.py").write_text("class Llama:\n    backdoor = True\n")
    c.git("add", "models/llama/modeling.py")
    c.git("commit", "-q", "-m", "Merge branch side")
    assert base != c.head()
    assert "modified models/llama/modeling.py" in _refused(c)


def test_commit_pushed_to_feature_then_unchanged_to_main_is_refused(server: Server) -> None:
    c = server.clone()
    c.write("models/llama/modeling.py", "class Llama:\n    pass  # v2\n")
    sha = c.commit("v2")
    assert c.push("HEAD:refs/heads/feature").ok
    # the second push brings no new objects at all; only the net diff of main sees the change
    result = c.push(f"{sha}:refs/heads/main")
    assert not result.ok
    assert "modified models/llama/modeling.py" in result.remote


def test_new_protected_branch_from_main_is_allowed_but_with_changes_is_refused(server: Server) -> None:
    c = server.clone()
    ok = c.push("HEAD:refs/heads/release/1.0")
    assert ok.ok, ok.output
    assert "new ref" in ok.remote
    c.write("models/llama/modeling.py", "class Llama:\n    pass  # release hack\n")
    c.commit("hack")
    out = _refused(c, "HEAD:refs/heads/release/2.0")
    assert "modified models/llama/modeling.py" in out
    assert server.ref("refs/heads/release/2.0") is None


def test_unrelated_history_as_new_protected_branch_is_diffed_against_empty_tree(server: Server) -> None:
    c = server.clone()
    c.git("checkout", "-q", "--orphan", "other")
    c.git("rm", "-q", "-r", "--cached", ".")
    c.write("models/new.py", "x = 1\n")
    c.commit("orphan")
    out = _refused(c, "HEAD:refs/heads/release/orphan")
    assert "added    models/new.py" in out


def test_deleting_a_protected_branch_is_refused(server: Server) -> None:
    c = server.clone()
    assert c.push("HEAD:refs/heads/release/1.0").ok
    out = _refused(c, ":refs/heads/release/1.0")
    assert "protected-ref-history (deleting a protected ref)" in out
    assert server.ref("refs/heads/release/1.0") is not None


def test_force_push_of_protected_branch_is_refused_even_without_protected_paths(server: Server) -> None:
    c = server.clone()
    c.write("src/a.py", "a\n")
    c.commit("a")
    assert c.push().ok
    c.git("reset", "-q", "--hard", "HEAD~1")
    c.write("src/b.py", "b\n")
    c.commit("b")
    out = _refused(c, force=True)
    assert "protected-ref-history (rewriting a protected ref's history)" in out


def test_tags_are_protected_refs(server: Server) -> None:
    c = server.clone()
    c.git("tag", "-a", "-m", "v1", "v1.0")
    assert c.push("refs/tags/v1.0").ok  # tag at main's tip: nothing new under protected paths
    c.write("models/llama/modeling.py", "class Llama:\n    tagged = 1\n")
    c.commit("tag-only change")
    c.git("tag", "v1.1")
    out = _refused(c, "refs/tags/v1.1")
    assert "refs/tags/v1.1: needs approval" in out


def test_900_refs_in_one_push(server: Server) -> None:
    c = server.clone()
    for i in range(900):
        c.git("branch", f"topic/{i:03d}")
    result = c.push("refs/heads/topic/*:refs/heads/topic/*")
    assert result.ok, result.output[-2000:]
    assert len(server.decisions()[-1]["updates"]) == 900


def test_atomic_push_with_one_protected_violation_lands_nothing(server: Server) -> None:
    c = server.clone()
    c.write("models/llama/modeling.py", "evil\n")
    c.commit("evil")
    result = c.push("HEAD:refs/heads/main", "HEAD:refs/heads/feature")
    assert not result.ok
    # pre-receive refuses the whole push: no ref moves, not even the unprotected one
    assert server.ref("refs/heads/feature") is None
    assert "refs/heads/feature: allowed" in result.remote


def test_odd_path_names_cannot_dodge_rules(server: Server) -> None:
    c = server.clone()
    names = [
        b"models/new\nline.py",
        b"models/tab\there.py",
        b'models/"quoted".py',
        b"models/latin1-\xe9.bin",
        b"Models/upper.py",
        b"MODELS/llama/shout.py",
        unicodedata.normalize("NFD", "models/modèle.py").encode(),
    ]
    for name in names:
        c.write(name, b"payload\n")
    c.commit("odd names")
    out = _refused(c)
    decision = server.decisions()[-1]
    assert decision["updates"][0]["paths_total"] == len(names)
    assert "... and 2 more protected paths" in out


def test_rejected_push_leaves_no_objects_and_no_ref(server: Server) -> None:
    def objects() -> set[str]:
        return {p.name for p in (server.bare / "objects").rglob("*") if p.is_file()}

    before_objects = objects()
    before_refs = run_git("for-each-ref", cwd=server.bare).stdout
    c = server.clone()
    c.write("models/llama/huge.py", "x" * 100_000)
    c.commit("big")
    _refused(c)
    assert run_git("for-each-ref", cwd=server.bare).stdout == before_refs
    leftovers = [p for p in (server.bare / "objects").iterdir() if p.name.startswith(("incoming", "tmp_objdir"))]
    assert leftovers == []
    assert objects() == before_objects


def test_monitor_mode_records_and_warns_but_never_blocks(server: Server) -> None:
    server.write_policy(mode="monitor")
    c = server.clone()
    c.write("models/llama/modeling.py", "changed\n")
    sha = c.commit("x")
    result = c.push()
    assert result.ok, result.output
    assert "MONITOR MODE: this push would be refused" in result.remote
    assert "rule model-code needs 1 approval" in result.remote
    assert server.ref("refs/heads/main") == sha
    decision = server.decisions()[-1]
    assert decision["decision"] == "deny" and decision["blocked"] is False and decision["mode"] == "monitor"


def test_post_receive_records_what_actually_changed(server: Server) -> None:
    c = server.clone()
    c.write("src/x.py", "1\n")
    sha = c.commit("x")
    assert c.push().ok
    outcome = [r["event"] for r in server.records() if r["event"]["type"] == "push.outcome"][-1]
    assert outcome["updates"] == [{"ref": "refs/heads/main", "old": outcome["updates"][0]["old"], "new": sha}]


def test_break_glass_by_admin_lands_and_is_flagged(server: Server) -> None:
    c = server.clone()
    c.write("models/llama/modeling.py", "hotfix\n")
    sha = c.commit("hotfix")
    denied = c.push(options=["gatekeeper.break-glass=prod down"])
    assert not denied.ok
    assert "break-glass refused" in denied.remote
    result = c.push(options=["gatekeeper.break-glass=prod down, INC-1234"], env={"GATEKEEPER_USER": "dave"})
    assert result.ok, result.output
    assert "BREAK-GLASS push by dave" in result.remote
    assert server.ref("refs/heads/main") == sha
    decision = server.decisions()[-1]
    assert decision["decision"] == "break-glass"
    assert decision["break_glass"] == {"by": "dave", "reason": "prod down, INC-1234"}


@pytest.mark.parametrize(("account", "allowed"), [("dave", False), ("dave.d", True), ("mallory", False)])
def test_break_glass_goes_by_the_person_behind_the_account(server: Server, account: str, allowed: bool) -> None:
    # dave (admins) pushes as dave.d; a platform account that happens to be called "dave" (unmapped, or another
    # person's) is not dave and must not break glass in his name.
    from gitserver import DEFAULT_POLICY

    server.write_policy(DEFAULT_POLICY.format(mode="enforce").replace(
        "dave: {emails: [dave@example.com]}", "dave: {emails: [dave@example.com], accounts: [dave.d]}\n"
        "  mallory: {accounts: [dave]}"))
    c = server.clone()
    c.write("models/llama/modeling.py", "hotfix\n")
    sha = c.commit("hotfix")
    result = c.push(options=["gatekeeper.break-glass=prod down"], env={"GATEKEEPER_USER": account})
    assert result.ok is allowed, result.output
    assert (server.ref("refs/heads/main") == sha) is allowed
    decision = server.decisions()[-1]
    if allowed:
        assert decision["break_glass"] == {"by": account, "reason": "prod down"}
    else:
        assert decision["decision"] == "deny"
        assert f"break-glass refused: {account} is not in the policy's break_glass list" in result.remote


def test_gitlab_identity_and_message_prefix(server: Server) -> None:
    c = server.clone()
    c.write("models/llama/modeling.py", "y\n")
    c.commit("y")
    result = c.push(env={"GL_USERNAME": "alice", "GL_ID": "user-7", "GL_PROTOCOL": "ssh",
                         "GL_PROJECT_PATH": "ml/llama-train"})
    assert not result.ok
    assert all(line.startswith("GL-HOOK-ERR: ") for line in result.remote.splitlines() if line.strip())
    decision = server.decisions()[-1]
    assert decision["pusher"] == {"user": "alice", "source": "gitlab:GL_USERNAME", "deploy_key": False}
    assert decision["protocol"] == "ssh"


def test_gitea_deploy_key_is_its_own_identity(server: Server) -> None:
    c = server.clone()
    c.write("src/y.py", "y\n")
    c.commit("y")
    result = c.push(env={"GITEA_PUSHER_NAME": "owner", "GITEA_DEPLOY_KEY_ID": "12",
                         "GITEA_REPO_USER_NAME": "ml", "GITEA_REPO_NAME": "llama-train",
                         "SSH_ORIGINAL_COMMAND": "git-receive-pack 'ml/llama-train.git'"})
    assert result.ok, result.output
    decision = server.decisions()[-1]
    assert decision["pusher"]["user"] == "deploy-key:12" and decision["pusher"]["deploy_key"] is True


def test_pinned_platform_with_missing_identity_fails_closed(server: Server) -> None:
    server.config.write_text(server.config.read_text().replace("mode: enforce", "mode: enforce\nplatform: gitlab"))
    c = server.clone()
    c.write("src/z.py", "z\n")
    c.commit("z")
    result = c.push()
    assert not result.ok
    assert "platform is pinned to 'gitlab'" in result.remote
    assert "Traceback" not in result.output
    assert server.decisions()[-1]["decision"] == "error"


def test_hook_refuses_on_git_env_quarantine_subprocess_reads(server: Server) -> None:
    """The quarantined objects are visible to the gate: a brand-new blob under models/ is seen (not 'missing')."""
    c = server.clone()
    c.write("models/brand_new.py", "print('never seen before')\n")
    c.commit("new")
    out = _refused(c)
    assert "added    models/brand_new.py" in out
    assert "is not in the repository" not in out


def _hook_direct(server: Server, stdin: bytes) -> subprocess.CompletedProcess[str]:
    shim = server.bare / "hooks" / "pre-receive"
    proc = subprocess.run([str(shim)], input=stdin, cwd=server.bare, capture_output=True,
                          env={"PATH": "/usr/bin:/bin", "GIT_DIR": "."}, check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def test_malformed_stdin_is_refused_and_recorded(server: Server) -> None:
    main = server.ref("refs/heads/main")
    cases = [
        b"garbage\n",
        b"0" * 40 + b" " + b"1" * 39 + b" refs/heads/main\n",
        b"0" * 40 + b" " + (main or "").encode() + b" refs/heads/ma..in\n",
        b"0" * 40 + b" " + (main or "").encode() + b" refs/heads/\xff\n",
        b"0" * 40 + b" " + (main or "").encode() + b" heads/main\n",
        b"0" * 64 + b" " + (main or "").encode() + b" refs/heads/x\n",
    ]
    for stdin in cases:
        proc = _hook_direct(server, stdin)
        assert proc.returncode == 1, (stdin, proc.stderr)
        assert "gatekeeper: push REFUSED" in proc.stderr and "hook input line 1" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert server.decisions()[-1]["decision"] == "error"
