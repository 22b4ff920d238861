"""Issue 8.3: refs that change what others read.

``refs/replace/<id>`` makes the server's own ``git show``/``git archive``, web UIs, mirrors and CI clones (with
``--mirror`` or a replace refspec) show another object in place of ``<id>``: a change to protected content that no diff
of any branch reveals. The gate refuses every update under ``refs/replace/`` (any letter case: loose refs on a
case-insensitive disk), and says what would have been replaced. Ref names that shadow a protected ref when a server-side
reader resolves a short name (``refs/main`` and ``refs/tags/main`` win over ``refs/heads/main`` in ``git rev-parse
main``) are protected like the ref they shadow, and the gate's own ``refs/gatekeeper/`` namespace takes nothing but
valid approvals.
"""

from __future__ import annotations

from pathlib import Path

from gitserver import DEFAULT_POLICY, Server, run_git, seed_content

from attacks.attacklib import Crafter, assert_refused, bare_git


def test_replacing_a_protected_files_blob_is_refused(server: Server) -> None:
    """Before the fix: allowed, and `git show main:models/llama/modeling.py` on the server showed the new text."""
    x = Crafter(server.clone())
    original = bare_git(server, "rev-parse", "main:models/llama/modeling.py")
    evil = x.blob(b"class Llama:\n    sabotage = True\n")
    ref = f"refs/replace/{original}"
    result = x.push(evil, ref)
    decision = assert_refused(server, result, ref, None, "object substitution",
                              f"{original[:12]} (blob)", f"by {evil[:12]} (blob)")
    assert decision["updates"][0]["decision"] == "deny"
    shown = bare_git(server, "show", "main:models/llama/modeling.py")
    assert "sabotage" not in shown


def test_replacing_the_protected_branch_tip_is_refused(server: Server) -> None:
    x = Crafter(server.clone())
    tip = server.ref("refs/heads/main")
    assert tip is not None
    evil = x.commit_with(b"models/llama/modeling.py", "100644", x.blob(b"evil\n"), parent=tip)
    ref = f"refs/replace/{tip}"
    result = x.push(evil, ref)
    assert_refused(server, result, ref, None, "object substitution", f"{tip[:12]} (commit)")


def test_deleting_a_replace_ref_is_refused_too(server: Server) -> None:
    """A replacement an admin put on the server is part of what readers see; a pusher cannot drop it either."""
    x = Crafter(server.clone())
    original = bare_git(server, "rev-parse", "main:README.md")
    # the admin writes the replacement on the server directly (the gate does not run there)
    fixed = run_git("hash-object", "-w", "--stdin", cwd=server.bare, input=b"# llama-train (fixed)\n").stdout
    fixed_id = fixed.decode().strip()
    bare_git(server, "update-ref", f"refs/replace/{original}", fixed_id)
    result = x.clone.push(f":refs/replace/{original}")
    assert_refused(server, result, f"refs/replace/{original}", fixed_id, "object substitution")


def test_upper_case_replace_namespace_is_refused(server: Server) -> None:
    x = Crafter(server.clone())
    original = bare_git(server, "rev-parse", "main:models/llama/modeling.py")
    ref = f"refs/REPLACE/{original}"
    result = x.push(x.blob(b"evil\n"), ref)
    assert_refused(server, result, ref, None, "object substitution")


def test_ref_shadowing_main_for_short_name_readers_is_protected(server: Server) -> None:
    """Before the fix: allowed, and `git rev-parse main` (git archive main, git log main) on the server then named the
    pusher's unreviewed commit: refs/<name> comes before refs/heads/<name> in git's lookup order."""
    c = server.clone()
    before_main = server.ref("refs/heads/main")
    c.write("models/llama/modeling.py", "class Llama:\n    sabotage = True\n")
    c.commit("shadow")
    result = c.push("HEAD:refs/main")
    decision = assert_refused(server, result, "refs/main", None, "refs/main", "shadows refs/heads/main",
                              "rule model-code")
    assert decision["updates"][0]["protected"] is True
    assert bare_git(server, "rev-parse", "main") == before_main


def test_unprotected_tag_named_like_a_protected_branch_is_protected(tmp_path: Path, clean_env: Path) -> None:
    srv = Server(tmp_path / "srv")
    seed_content(srv.clone("seeder"))
    srv.write_policy(DEFAULT_POLICY.format(mode="enforce").replace(', "refs/tags/**"', ""))
    srv.install()
    c = srv.clone()
    c.write("models/llama/modeling.py", "evil\n")
    c.commit("shadow")
    result = c.push("HEAD:refs/tags/main")
    assert_refused(srv, result, "refs/tags/main", None, "shadows refs/heads/main")


def test_non_approval_ref_in_the_gatekeeper_namespace_is_refused(server: Server) -> None:
    """Before the fix: allowed. The namespace is the gate's evidence store; nothing else may live there."""
    c = server.clone()
    result = c.push("HEAD:refs/gatekeeper/approvals-index")
    assert_refused(server, result, "refs/gatekeeper/approvals-index", None, "refs/gatekeeper/")


def test_protected_ref_created_after_a_name_that_shadows_it_is_refused(server: Server) -> None:
    """The other order: `refs/release/2` pushed while nothing protected had that short name; then the real
    `refs/heads/release/2` would be read as the pusher's commit by `git archive release/2`."""
    c = server.clone()
    c.write("models/llama/modeling.py", "class Llama:\n    sabotage = True\n")
    c.commit("planted early")
    assert c.push("HEAD:refs/release/2").ok
    c.git("reset", "-q", "--hard", "origin/main")
    result = c.push("HEAD:refs/heads/release/2")
    assert_refused(server, result, "refs/heads/release/2", None, "refs/release/2 exists and would be read instead")
