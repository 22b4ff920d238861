"""End-to-end (issue 10): the nastiest polyglots pushed for real, and config edits that must not be over-gated.

Each polyglot is a file one loader reads as a harmless format and another as a pickle that runs ``os.system``; the
payloads are checked with the recording oracle in ``tests/detectors/test_polyglots.py``. Here they are pushed with the
real git client into a bare repository with the hook installed: the push is refused, the ref does not move, the
pusher is told what was found where, and the audit record carries the finding.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from gitserver import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "detectors"))
from test_containers_formats import EVIL, TORCH_LIKE, Member, make_zip
from test_polyglots import PAYLOAD_P0, gguf, tar_with_first_name
from test_scanner_redteam import pax_sized_tar, zip64_npz

POLYGLOTS = {
    "models/llama.gguf": gguf(PAYLOAD_P0),  # a GGUF header that is also a protocol 0 pickle
    "weights/bundle.tar": tar_with_first_name(PAYLOAD_P0),  # a tar whose first member's name is a pickle
    # a gzip stream joblib reads as a benign pickle, with a zip behind it whose member is the payload
    "weights/model.joblib": gzip.compress(TORCH_LIKE) + make_zip([Member("data.pkl", EVIL)]),
    # second attack round (tests/detectors/test_scanner_redteam.py), both scanned clean before it: an npz whose zip64
    # locator points zipfile (np.load) at a second directory holding an object array, and a tar whose pax size makes
    # tarfile read a member's data from a block that a reader ignoring pax takes for the next header
    "data/embeddings.npz": zip64_npz(),
    "checkpoints/legacy.tar": pax_sized_tar(PAYLOAD_P0),
}


@pytest.mark.parametrize("path", sorted(POLYGLOTS))
def test_polyglot_is_refused_on_a_feature_branch(server: Server, path: str) -> None:
    c = server.clone()
    c.write(path, POLYGLOTS[path])
    c.commit("add model file")
    result = c.push("HEAD:refs/heads/feature")
    assert not result.ok, result.output
    assert "refs/heads/feature: REFUSED" in result.remote
    assert f"malicious: {path}" in result.remote and "os.system" in result.remote
    assert server.ref("refs/heads/feature") is None
    decision = server.decisions()[-1]
    assert any(f["verdict"] == "malicious" and f["path"].startswith(path) for f in decision["findings"])


def _seed_remote_code_model(server: Server) -> object:
    c = server.clone()
    config = {"auto_map": {"AutoModel": "modeling_x.XModel"}, "hidden_size": 1}
    c.write("hub/x/config.json", json.dumps(config))
    c.write("hub/x/modeling_x.py", "class XModel: pass\n")
    c.commit("remote code model")
    assert c.push(options=["gatekeeper.break-glass=seed"], env={"GATEKEEPER_USER": "dave"}).ok
    return c


def test_editing_other_keys_of_a_trigger_config_needs_no_remote_code_approval(server: Server) -> None:
    c = _seed_remote_code_model(server)
    c.write("hub/x/config.json", json.dumps({"auto_map": {"AutoModel": "modeling_x.XModel"}, "hidden_size": 2}))
    c.commit("bigger model")
    result = c.push()
    assert result.ok, result.output
    assert "rule remote-code" not in result.remote


def test_changing_the_trigger_says_what_changed(server: Server) -> None:
    c = _seed_remote_code_model(server)
    c.write("hub/x/other.py", "class XModel: pass\n")
    c.write("hub/x/config.json", json.dumps({"auto_map": {"AutoModel": "other.XModel"}, "hidden_size": 1}))
    c.commit("switch modeling file")
    result = c.push()
    assert not result.ok
    assert "rule remote-code" in result.remote
    assert "auto_map.AutoModel = other.XModel" in result.remote
    assert "removed: auto_map.AutoModel = modeling_x.XModel" in result.remote
