"""transformers auto_map triggers and the relative-import closure: each malicious sample has a benign twin."""

from __future__ import annotations

import json

import pytest

from gatekeeper.detectors.import_closure import python_closure, transformers_relative_imports
from gatekeeper.detectors.scan import analyse_remote_code
from gatekeeper.model import Finding, Verdict


class DictTree:
    """A TreeView over a dict; records reads so tests can assert what the analysis touched."""

    def __init__(self, files: dict[str, str | bytes]) -> None:
        self.files = {k.encode(): v.encode() if isinstance(v, str) else v for k, v in files.items()}
        self.reads: list[bytes] = []

    def paths(self) -> list[bytes]:
        return list(self.files)

    def read(self, path: bytes) -> bytes | None:
        self.reads.append(path)
        return self.files.get(path)

    def mode(self, path: bytes) -> int | None:
        return 0o100644 if path in self.files else None


def cfg(**doc: object) -> str:
    return json.dumps(doc)


def review(findings: list[Finding], path: str) -> list[Finding]:
    return [f for f in findings if f.verdict == Verdict.REVIEW and f.path == path]


MODEL = {
    "modeling_x.py": "from .utils import helper\nclass XModel: pass\n",
    "utils.py": "from .layers import Dense\n\ndef helper(): pass\n",
    "layers.py": "class Dense: pass\n",
    "tokenization_x.py": "class XTok: pass\n",
    "tokenization_x_fast.py": "class XTokFast: pass\n",
    "image_processing_x.py": "class XImageProcessor: pass\n",
    "README.md": "hello",
}


@pytest.mark.parametrize(
    ("name", "doc", "expected"),
    [
        ("config.json", {"auto_map": "modeling_x.XModel"}, {b"modeling_x.py"}),  # bare string
        ("config.json", {"auto_map": {"AutoModel": "modeling_x.XModel"}}, {b"modeling_x.py"}),
        ("tokenizer_config.json", {"auto_map": ["tokenization_x.XTok", "tokenization_x_fast.XTokFast"]},
         {b"tokenization_x.py", b"tokenization_x_fast.py"}),  # legacy [slow, fast]
        ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["tokenization_x.XTok", None]}},
         {b"tokenization_x.py"}),  # dict of list with null
        ("preprocessor_config.json", {"auto_map": {"AutoFeatureExtractor": "image_processing_x.XFeatureExtractor"}},
         {b"image_processing_x.py"}),
        ("generation_config.json", {"auto_map": {"AutoModel": "modeling_x.XModel"}}, {b"modeling_x.py"}),
    ],
)
def test_auto_map_forms_protect_module_and_closure(name: str, doc: dict[str, object], expected: set[bytes]) -> None:
    tree = DictTree({**MODEL, name: json.dumps(doc)})
    report = analyse_remote_code(tree, [name.encode()])
    assert expected <= set(report.protected)
    assert name.encode() in report.protected
    (finding,) = [f for f in review(report.findings, name) if "trigger added or changed" in f.message]
    assert finding.detector == "remote-code"
    # benign twin: the same config without auto_map triggers nothing
    twin = {k: v for k, v in doc.items() if k != "auto_map"} | {"model_type": "llama"}
    benign = analyse_remote_code(DictTree({**MODEL, name: json.dumps(twin)}), [name.encode()])
    assert benign.findings == [] and benign.protected == {}


def test_closure_chain_changing_only_layers_is_flagged_with_the_chain() -> None:
    tree = DictTree({**MODEL, "config.json": cfg(auto_map={"AutoModel": "modeling_x.XModel"})})
    report = analyse_remote_code(tree, [b"layers.py"])
    (finding,) = review(report.findings, "layers.py")
    assert finding.message == "changed file runs when the model is loaded"
    chain = "pulled in by config.json auto_map.AutoModel -> modeling_x.py -> utils.py -> layers.py"
    assert finding.evidence[0] == chain
    assert report.protected[b"layers.py"] == finding.evidence[0]
    # benign twin: utils.py no longer imports layers -> layers.py is not pulled in (and no config in the repo has a
    # trigger in its folder... config.json does, so the folder rule still protects it: use a sub-folder model)
    files = {f"model/{k}": v for k, v in MODEL.items()} | {"model/utils.py": "def helper(): pass\n",
                                                           "model/config.json": cfg(auto_map="modeling_x.XModel"),
                                                           "other/layers.py": "x = 1\n"}
    twin = analyse_remote_code(DictTree(files), [b"other/layers.py"])
    assert twin.findings == [] and b"other/layers.py" not in twin.protected


def test_transformers_regex_quirks() -> None:
    text = ("from .a import x\nimport .b\nfrom . import c\nfrom .d.e import f\nfrom ..g import h\n"
            "def f():\n    from .lazy import q\n")
    assert transformers_relative_imports(text) == [".g", "a", "b", "d.e", "lazy"]


def test_exact_and_superset_closure() -> None:
    files = {
        "m/modeling.py": "from . import c\nfrom .a import x\nimport helper\nimportlib.import_module(name)\n",
        "m/a.py": "def f():\n    from .lazy import q\n",
        "m/lazy.py": "",
        "m/c.py": "",  # only via the unmatched `from . import c`: superset
        "m/helper.py": "",  # plain import resolving to a sibling: superset
    }
    tree = DictTree(files)
    closure = python_closure(tree.read, b"m/modeling.py")
    exact = {p for p, r in closure.files.items() if r.exact}
    assert exact == {b"m/modeling.py", b"m/a.py", b"m/lazy.py"}
    assert set(closure.files) - exact == {b"m/c.py", b"m/helper.py"}
    assert closure.files[b"m/lazy.py"].chain == (b"m/modeling.py", b"m/a.py", b"m/lazy.py")
    assert any("import_module(<expression>)" in d for d in closure.dynamic)
    assert python_closure(tree.read, b"m/modeling.py", superset=False).files.keys() == exact


def test_unparsable_module_still_has_its_imports_followed() -> None:
    files = {"modeling_x.py": "from .evil import run\nthis is not python (\n", "evil.py": "import os\n",
             "config.json": cfg(auto_map={"AutoModel": "modeling_x.M"})}
    report = analyse_remote_code(DictTree(files), [b"evil.py"])
    assert "modeling_x.py -> evil.py" in review(report.findings, "evil.py")[0].evidence[0]


def test_cross_repo_reference_is_external_unpinned_code() -> None:
    ref = "openai/gpt-oss-20b--configuration_gpt_oss.GptOssConfig"
    report = analyse_remote_code(DictTree({"config.json": cfg(auto_map={"AutoConfig": ref})}), [b"config.json"])
    external = [f for f in review(report.findings, "config.json") if f.message.startswith("external code")]
    assert len(external) == 1
    assert external[0].message == (f"external code: auto_map.AutoConfig loads {ref} from repository openai/gpt-oss-20b "
                                   "at a floating revision (not in this push, not scannable)")
    assert external[0].evidence == ("upstream openai/gpt-oss-20b",)
    # benign twin: the local reference to a file that exists is not external
    local = analyse_remote_code(DictTree({"config.json": cfg(auto_map={"AutoConfig": "configuration_gpt_oss.C"}),
                                          "configuration_gpt_oss.py": ""}), [b"config.json"])
    assert not [f for f in local.findings if "external" in f.message]


def test_renamed_processor_keys_resolve_rewritten_module_files() -> None:
    # The rewrite applies to the whole reference: a module named after the class is another file after rewriting.
    doc = cfg(auto_map={"AutoFeatureExtractor": "XFeatureExtractorMod.XFeatureExtractor"})
    files = {"preprocessor_config.json": doc, "XImageProcessorMod.py": "import os\n",
             "XVideoProcessorMod.py": "import os\n", "XFeatureExtractorMod.py": ""}
    report = analyse_remote_code(DictTree(files), [b"preprocessor_config.json"])
    assert {b"XFeatureExtractorMod.py", b"XImageProcessorMod.py", b"XVideoProcessorMod.py"} <= set(report.protected)
    changed = analyse_remote_code(DictTree(files), [b"XVideoProcessorMod.py"])
    assert "(as VideoProcessor)" in review(changed.findings, "XVideoProcessorMod.py")[0].evidence[0]


def test_subfolder_module_and_dangling_reference() -> None:
    files = {"config.json": cfg(auto_map={"AutoModel": "code/modeling.M", "AutoConfig": "missing_mod.C"}),
             "code/modeling.py": "from .impl import x\n", "impl.py": "", "code/impl.py": ""}
    report = analyse_remote_code(DictTree(files), [b"config.json"])
    assert b"code/modeling.py" in report.protected
    # transformers resolves relative imports against the FIRST module's folder: code/impl.py, and root impl.py is not
    assert report.protected[b"code/impl.py"].startswith("pulled in by config.json auto_map.AutoModel")
    dangling = [f for f in report.findings if f.message.startswith("dangling reference")]
    assert len(dangling) == 1 and "missing_mod.C" in dangling[0].message
    assert dangling[0].evidence == ("looked for missing_mod.py",)


def test_deleting_a_referenced_module_is_flagged() -> None:
    files = {"config.json": cfg(auto_map={"AutoModel": "modeling_x.M"})}
    report = analyse_remote_code(DictTree(files), [b"modeling_x.py"])
    assert [f.message for f in review(report.findings, "config.json")] == [
        "dangling reference: auto_map.AutoModel = modeling_x.M names a module that is not in the repository"]


def test_python_file_in_a_remote_code_folder_is_protected_even_if_not_imported() -> None:
    files = {**MODEL, "config.json": cfg(auto_map={"AutoModel": "modeling_x.XModel"}), "sneaky.py": "import os\n"}
    report = analyse_remote_code(DictTree(files), [b"sneaky.py"])
    (finding,) = review(report.findings, "sneaky.py")
    assert finding.evidence[0].startswith("in folder of remote code loaded by config.json auto_map.AutoModel")


def test_custom_pipelines_impl() -> None:
    doc = cfg(custom_pipelines={"pair-classification": {"impl": "custom_pipe.PairPipeline", "pt": ["AutoModel"]}})
    files = {"config.json": doc, "custom_pipe.py": "from .helpers import h\n", "helpers.py": ""}
    report = analyse_remote_code(DictTree(files), [b"helpers.py"])
    assert review(report.findings, "helpers.py")[0].evidence[0] == (
        "pulled in by config.json custom_pipelines.pair-classification.impl -> custom_pipe.py -> helpers.py")
    benign = analyse_remote_code(DictTree({"config.json": cfg(task_specific_params={}), "helpers.py": ""}),
                                 [b"helpers.py"])
    assert benign.findings == []


def test_custom_generate_and_requirements() -> None:
    files = {"custom_generate/generate.py": "from .util import f\n", "custom_generate/util.py": "",
             "custom_generate/requirements.txt": "evilpkg==1\n"}
    report = analyse_remote_code(DictTree(files), [b"custom_generate/util.py", b"custom_generate/requirements.txt"])
    assert review(report.findings, "custom_generate/util.py")[0].evidence[0] == (
        "pulled in by custom_generate/generate.py generate(custom_generate=...) -> custom_generate/generate.py -> "
        "custom_generate/util.py")
    assert review(report.findings, "custom_generate/requirements.txt")
    benign = analyse_remote_code(DictTree({"scripts/generate.py": "", "requirements.txt": ""}),
                                 [b"scripts/generate.py", b"requirements.txt"])
    assert benign.findings == []


def test_escaped_key_is_not_missed_by_the_prefilter() -> None:
    raw = '{"auto\\u005fmap": {"AutoModel": "modeling_x.XModel"}}'
    assert json.loads(raw)["auto_map"]
    report = analyse_remote_code(DictTree({**MODEL, "config.json": raw}), [b"config.json"])
    assert b"modeling_x.py" in report.protected


def test_unchanged_trigger_with_old_tree_gives_no_trigger_finding() -> None:
    old = DictTree({**MODEL, "config.json": cfg(auto_map={"AutoModel": "modeling_x.XModel"}, hidden_size=1)})
    new = DictTree({**MODEL, "config.json": cfg(auto_map={"AutoModel": "modeling_x.XModel"}, hidden_size=2)})
    report = analyse_remote_code(new, [b"config.json"], old=old)
    # Only hidden_size changed: the config needs the policy's own rules, no remote-code review (issue 10 item 7).
    assert [(f.verdict, f.message) for f in report.findings] == [
        (Verdict.HINT, "config edited; its remote-code triggers are unchanged, so no extra approval is needed for it")]
    assert b"config.json" not in report.protected and b"modeling_x.py" in report.protected
    changed = DictTree({**MODEL, "config.json": cfg(auto_map={"AutoModel": "utils.XModel"}, hidden_size=2)})
    again = analyse_remote_code(changed, [b"config.json"], old=old)
    (trigger,) = [f for f in again.findings if "remote-code trigger changed" in f.message]
    assert trigger.verdict == Verdict.REVIEW and b"config.json" in again.protected
    # the pusher reads what actually changed: the new reference and the one it replaced
    assert trigger.evidence[0].startswith("added: auto_map.AutoModel = utils.XModel -> utils.py")
    assert trigger.evidence[1] == "removed: auto_map.AutoModel = modeling_x.XModel"


def test_cost_reads_only_changed_files_and_relevant_configs() -> None:
    files = {**{f"data/{i}.txt": "x" for i in range(200)}, **{f"other{i}/config.json": "{}" for i in range(50)},
             "model/config.json": cfg(auto_map={"AutoModel": "modeling_x.XModel"}),
             **{f"model/{k}": v for k, v in MODEL.items()}}
    tree = DictTree(files)
    analyse_remote_code(tree, [b"model/layers.py"])
    assert not [p for p in tree.reads if p.startswith((b"data/", b"other"))]
    tree.reads.clear()
    analyse_remote_code(tree, [b"data/3.txt"])
    assert tree.reads == []


def test_huge_config_is_unscannable_not_silently_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatekeeper.detectors import remote_code

    monkeypatch.setattr(remote_code, "MAX_CONFIG_BYTES", 100)
    doc = cfg(auto_map={"AutoModel": "modeling_x.XModel"}, pad="x" * 200)
    report = analyse_remote_code(DictTree({"config.json": doc}), [b"config.json"])
    assert [(f.verdict, f.message) for f in report.findings] == [
        (Verdict.UNSCANNABLE, f"config cannot be analysed for remote-code triggers: {len(doc)} bytes, above the "
                              "100-byte cap for configs")]


def test_deeply_nested_json_is_unscannable() -> None:
    doc = '{"auto_map": ' + "[" * 100_000 + "]" * 100_000 + "}"
    report = analyse_remote_code(DictTree({"config.json": doc}), [b"config.json"])
    assert [f.verdict for f in report.findings] == [Verdict.UNSCANNABLE]


def test_utf16_json_is_parsed_despite_the_prefilter() -> None:
    raw = json.dumps({"auto_map": {"AutoModel": "modeling_x.XModel"}}).encode("utf-16")
    report = analyse_remote_code(DictTree({**MODEL, "config.json": raw}), [b"config.json"])
    assert b"modeling_x.py" in report.protected


def test_oversized_module_is_unscannable(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatekeeper.detectors import import_closure

    monkeypatch.setattr(import_closure, "MAX_SOURCE_BYTES", 100)
    files = {"config.json": cfg(auto_map={"AutoModel": "modeling_x.M"}),
             "modeling_x.py": "from .hidden import x\n" + "#" * 200, "hidden.py": ""}
    report = analyse_remote_code(DictTree(files), [b"config.json"])
    assert ("modeling_x.py", Verdict.UNSCANNABLE) in [(f.path, f.verdict) for f in report.findings]
    assert b"modeling_x.py" in report.protected


def test_superset_follows_exec_of_opened_files_and_src_layout() -> None:
    files = {"m/modeling.py": "exec(open('m/payload.txt').read())\nfrom mypkg.core import x\n",
             "m/payload.txt": "import os\n", "src/mypkg/__init__.py": "", "src/mypkg/core.py": ""}
    closure = python_closure(DictTree(files).read, b"m/modeling.py")
    assert {b"m/payload.txt", b"src/mypkg/__init__.py", b"src/mypkg/core.py"} <= set(closure.files)
    # benign twin: reading a data file without exec does not make it code
    plain = {"m/modeling.py": "data = open('m/payload.txt').read()\n", "m/payload.txt": ""}
    assert set(python_closure(DictTree(plain).read, b"m/modeling.py").files) == {b"m/modeling.py"}


def test_module_stored_in_lfs_is_reported_as_not_followed() -> None:
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 10\n"
    files = {"config.json": cfg(auto_map={"AutoModel": "modeling_x.M"}), "modeling_x.py": pointer}
    report = analyse_remote_code(DictTree(files), [b"modeling_x.py"])
    (finding,) = report.findings
    assert finding.evidence[1] == ("modeling_x.py is a Git LFS pointer: the code that runs is the LFS object, whose "
                                   "imports are not followed")


def test_a_lone_surrogate_in_a_reference_is_a_reported_problem_not_a_crash() -> None:
    # JSON may spell a lone surrogate (\ud800); json.loads accepts it, yet no path in a checkout can hold that name.
    # The reference is reported (it needs review like any trigger), and the rest of the scan goes on.
    raw = '{"model_type": "x", "auto_map": {"AutoModel": "\\ud800mod.Net", "AutoConfig": "cfg.Config"}}'
    tree = DictTree({"config.json": raw, "cfg.py": "class Config: pass\n"})
    report = analyse_remote_code(tree, [b"config.json"])
    found = review(report.findings, "config.json")
    assert found, report.findings
    text = [" ".join((f.message, *f.evidence)) for f in found]
    assert any("no file can hold" in t for t in text), text
    assert b"cfg.py" in report.protected
