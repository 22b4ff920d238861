"""A verdict is reused for the same blob at another path only where the scan reads both paths alike.

The scanner's verdict depends on a few facts of the path (a broken stream with an unknown global is text in a file
*named* as text, a pickle elsewhere; ``saved_model.pb`` and ``.safetensors`` get their own readers). The per-push
de-duplication and the verdict cache used to key by blob id alone, so the first path a blob was seen at decided for
every other: the same bytes as ``aaa/notes.txt`` and ``weights.pkl`` let the weight file through on ``main``.
"""

from __future__ import annotations

import pytest

from gatekeeper.detectors.cache import VerdictCache
from gatekeeper.detectors.content import ScanOptions, scan_blob
from gatekeeper.model import Verdict
from gitserver import Server

# GLOBAL of a module no allow-list knows, then bytes that end the stream: pickle.load imports the module (its
# import-time code runs) before it fails.
STUB = b"cevilmod\nrun\n\xff\xff not a pickle any more"


@pytest.mark.parametrize("twin", [None, "aaa/notes.txt", "zzz/README.md"])
def test_a_text_named_twin_does_not_clear_a_weight_file(server: Server, twin: str | None) -> None:
    c = server.clone()
    if twin:
        c.write(twin, STUB)
    c.write("weights.pkl", STUB)
    c.commit("notes and weights")
    result = c.push("HEAD:refs/heads/main")
    assert not result.ok, result.output
    assert "weights.pkl" in result.remote
    assert server.ref("refs/heads/main") != c.head()
    decision = server.decisions()[-1]
    assert any(f["path"] == "weights.pkl" and f["verdict"] != "hint" for f in decision["findings"]), decision


def test_the_verdict_cache_keeps_paths_the_scan_reads_differently_apart(tmp_path) -> None:
    cache = VerdictCache(tmp_path / "cache")
    options = ScanOptions()
    blob = "ab" * 20
    as_text = scan_blob("notes.txt", STUB, options)
    as_weights = scan_blob("weights.pkl", STUB, options)
    assert all(f.verdict is Verdict.HINT for f in as_text), as_text  # the lenient reading, by name
    assert any(f.verdict is not Verdict.HINT for f in as_weights), "not clean under a weight file name"
    cache.put(blob, options, "notes.txt", as_text)
    assert cache.get(blob, options, "weights.pkl") is None  # not the text verdict
    cache.put(blob, options, "weights.pkl", as_weights)
    assert [f.verdict for f in cache.get(blob, options, "other/weights.pkl") or []] == [f.verdict for f in as_weights]
