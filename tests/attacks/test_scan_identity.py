"""Second round: a blob's verdict must not depend on which of its paths the gate happened to scan.

The content scan is by bytes, but a few formats are only recognised by the name a loader opens: TensorFlow loads
``saved_model.pb`` and nothing sniffs a protobuf graph, so a ``PyFunc`` op is looked for only in blobs named so. The
gate scanned each blob once per push, at the first path it met, and cached the verdict by blob id: the same bytes at
``aaa/graph.bin`` first and ``export/saved_model.pb`` second were judged as ``graph.bin`` only, in the same push or
from the cache of an earlier push to any branch. A name a case-insensitive checkout opens as ``saved_model.pb``
(``SAVED_MODEL.PB``) must be read as that name too.
"""

from __future__ import annotations

import pytest
from gitserver import PushResult, Server

from attacks.attacklib import Crafter, assert_refused

# A protobuf-ish graph that calls back into Python on load: no magic bytes, recognised by its name only. Big enough
# (past the gate's 256 KiB cache threshold) that its verdict is cached.
PYFUNC_GRAPH = b"\x0a\x0cserving_default\x12\x06PyFunc\x1a\x04call" + b"\x00" * 300_000


def _pyfunc_finding(decision: dict, path: str) -> bool:
    return any(f["detector"] == "tensorflow" and f["path"] == path for f in decision.get("findings", []))


def _needs_review_for_pyfunc(server: Server, result: PushResult, before: str | None, path: str) -> None:
    decision = assert_refused(server, result, "refs/heads/main", before, path, "rule ml-artifacts")
    assert _pyfunc_finding(decision, path)


def test_the_same_graph_at_an_innocent_path_first_does_not_hide_it_as_saved_model(server: Server) -> None:
    """Before the fix: allowed (scanned once, as aaa/graph.bin)."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    graph = x.blob(PYFUNC_GRAPH)
    tree = x.tree_with(before, b"aaa/graph.bin", "100644", graph)
    commit = x.commit(x._set(tree, [b"export", b"saved_model.pb"], "100644", graph), before)
    result = x.push(commit, "refs/heads/main")
    _needs_review_for_pyfunc(server, result, before, "export/saved_model.pb")


def test_a_verdict_cached_at_another_name_on_another_branch_is_not_reused(server: Server) -> None:
    """Before the fix: allowed (the feature branch's push cached 'clean' for the blob id)."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    graph = x.blob(PYFUNC_GRAPH)
    assert x.push(x.commit_with(b"notes/graph.bin", "100644", graph, parent=before), "refs/heads/feature").ok
    assert not _pyfunc_finding(server.decisions()[-1], "notes/graph.bin")
    result = x.push(x.commit_with(b"export/saved_model.pb", "100644", graph, parent=before), "refs/heads/main")
    _needs_review_for_pyfunc(server, result, before, "export/saved_model.pb")


def test_the_same_blob_on_two_refs_is_judged_at_each_name(server: Server) -> None:
    """One push, two refs: the unprotected one names the blob innocently and is analysed first."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    graph = x.blob(PYFUNC_GRAPH)
    innocent = x.commit_with(b"a/graph.bin", "100644", graph, parent=before)
    loaded = x.commit_with(b"export/saved_model.pb", "100644", graph, parent=before)
    result = x.clone.push(f"{innocent}:refs/heads/aaa", f"{loaded}:refs/heads/main")
    _needs_review_for_pyfunc(server, result, before, "export/saved_model.pb")
    assert server.ref("refs/heads/aaa") is None


@pytest.mark.parametrize("name", [
    b"saved_model.pb",   # control: the name TensorFlow opens
    b"SAVED_MODEL.PB",   # before the fix: allowed (macOS and Windows open it for saved_model.pb)
    b"saved_model.pb.",  # before the fix: allowed (Windows drops the trailing dot)
])
def test_graph_at_a_name_a_checkout_loads_as_saved_model_needs_review(server: Server, name: bytes) -> None:
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    result = x.push(x.commit_with(b"export/" + name, "100644", x.blob(PYFUNC_GRAPH)), "refs/heads/main")
    _needs_review_for_pyfunc(server, result, before, "export/" + name.decode())


def test_risky_blob_met_first_at_a_path_the_push_deletes_again_still_needs_review(server: Server) -> None:
    """Three commits: add the graph at export/, add it again at tmp/, delete tmp/. The commit walk (newest first) met
    it at tmp/saved_model.pb, the finding was routed there, and the net change (export/ only) had no path with a
    finding: no requirement. Before the fix: allowed."""
    x = Crafter(server.clone())
    before = server.ref("refs/heads/main")
    graph = x.blob(PYFUNC_GRAPH)
    c1 = x.commit_with(b"export/saved_model.pb", "100644", graph, parent=before)
    c2 = x.commit_with(b"tmp/saved_model.pb", "100644", graph, parent=c1)
    c3 = x.commit(x._git("rev-parse", f"{c1}^{{tree}}"), c2)
    result = x.push(c3, "refs/heads/main")
    _needs_review_for_pyfunc(server, result, before, "export/saved_model.pb")
