"""Reviewer hints for risky loader calls in Python (never blocking), with ast and the line-scan fallback."""

from __future__ import annotations

import pytest

from gatekeeper.detectors.python_hints import python_hints
from gatekeeper.model import Verdict


def evidence(source: str | bytes) -> tuple[str, ...]:
    data = source.encode() if isinstance(source, str) else source
    found = python_hints("x.py", data)
    if not found:
        return ()
    (finding,) = found
    assert finding.verdict == Verdict.HINT and finding.detector == "python-hints"
    return finding.evidence


@pytest.mark.parametrize(
    ("risky", "benign", "expected"),
    [
        ("AutoModel.from_pretrained(p, trust_remote_code=True)", "AutoModel.from_pretrained(p)",
         "line 2: AutoModel.from_pretrained(trust_remote_code=True): runs code shipped with the model"),
        ("torch.load(f)", "torch.load(f, weights_only=True)",
         "line 2: torch.load without weights_only=True: unpickles arbitrary objects on torch<2.6"),
        ("torch.load(f, weights_only=False)", "torch.load(f, map_location='cpu', weights_only=True)",
         "line 2: torch.load with weights_only not True: unpickles arbitrary objects"),
        ("pickle.loads(b)", "json.loads(b)", "line 2: pickle.loads: unpickles (runs code from the data)"),
        ("pickle.load(fh)", "yaml.safe_load(fh)", "line 2: pickle.load: unpickles (runs code from the data)"),
        ("np.load(f, allow_pickle=True)", "np.load(f)",
         "line 2: numpy.load(allow_pickle=True): object arrays are unpickled"),
        ("OmegaConf.register_new_resolver('eval', eval)", "OmegaConf.register_new_resolver('add', add)",
         "line 2: register_new_resolver(..., eval): ${...} interpolations in configs are code"),
        ("DiffusionPipeline.from_pretrained(p, custom_pipeline='x')", "DiffusionPipeline.from_pretrained(p)",
         "line 2: DiffusionPipeline.from_pretrained(custom_pipeline=...): loads a diffusers pipeline from code"),
    ],
)
def test_risky_call_and_benign_twin(risky: str, benign: str, expected: str) -> None:
    header = "import torch, pickle, json, yaml\n"
    assert evidence(header + risky + "\n") == (expected,)
    assert evidence(header + benign + "\n") == ()


def test_aliases_are_followed() -> None:
    src = "import torch as t\nfrom pickle import loads as l\nfrom torch import load\nt.load(a)\nl(b)\nload(c)\n"
    assert evidence(src) == (
        "line 4: torch.load without weights_only=True: unpickles arbitrary objects on torch<2.6",
        "line 5: pickle.loads: unpickles (runs code from the data)",
        "line 6: torch.load without weights_only=True: unpickles arbitrary objects on torch<2.6",
    )


def test_disabling_check_torch_load_is_safe() -> None:
    patched = "def check_torch_load_is_safe():\n    return\n"
    original = "def check_torch_load_is_safe():\n    if not ok():\n        raise ValueError('upgrade torch')\n"
    monkey = "import transformers.utils.import_utils as iu\niu.check_torch_load_is_safe = lambda: None\n"
    assert evidence(patched) == ("line 1: defines check_torch_load_is_safe without raising: the torch>=2.6 check for "
                                 ".bin loading (CVE-2025-32434) is off",)
    assert evidence(original) == ("line 1: defines check_torch_load_is_safe",)
    assert evidence(monkey) == ("line 2: replaces iu.check_torch_load_is_safe: the torch>=2.6 check for .bin loading "
                                "(CVE-2025-32434) may be off",)


def test_unparsable_file_falls_back_to_a_line_scan() -> None:
    src = b"def broken(:\n    model = torch.load(path)\n    m = X(trust_remote_code=True)\n\x00"
    (finding,) = python_hints("x.py", src)
    assert finding.message == "2 risky loader call(s) for the reviewer to check (found by line scan (the file does " \
                              "not parse as Python))"
    assert finding.evidence == ("line 2: torch.load without weights_only=True on the same line",
                                "line 3: trust_remote_code=True: runs code shipped with the model")
    assert python_hints("x.py", b"def broken(:\n    torch.load(p, weights_only=True)\n") == []


def test_coding_cookie_is_honoured() -> None:
    # utf-7 hides "torch.load(x)" from a utf-8 reader; the interpreter decodes it
    src = b"# -*- coding: utf-7 -*-\nimport torch\n+AHQAbwByAGMAaAAuAGwAbwBhAGQAKAB4ACk-\n"
    assert evidence(src) == ("line 3: torch.load without weights_only=True: unpickles arbitrary objects on torch<2.6",)


def test_files_without_needles_skip_the_ast() -> None:
    assert python_hints("x.py", b"def f(:\n  broken but harmless\n") == []  # no needle: no parse, no finding


def test_hints_in_analysis_can_be_disabled_and_are_budgeted(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatekeeper.detectors import scan

    class Tree:
        files = {b"a.py": b"import torch\ntorch.load(f)\n", b"b.py": b"import pickle\npickle.loads(x)\n"}

        def paths(self) -> list[bytes]:
            return list(self.files)

        def read(self, path: bytes) -> bytes | None:
            return self.files.get(path)

        def mode(self, path: bytes) -> int | None:
            return 0o100644 if path in self.files else None

    assert scan.analyse_remote_code(Tree(), [b"a.py", b"b.py"], hints=False).findings == []
    monkeypatch.setattr(scan, "MAX_HINT_BYTES", 40)
    findings = scan.analyse_remote_code(Tree(), [b"a.py", b"b.py"]).findings
    assert [(f.path, f.message) for f in findings] == [
        ("(repository)", "hints for 1 more Python file(s) skipped (above 40 bytes of source per push)"),
        ("a.py", "1 risky loader call(s) for the reviewer to check (found by ast)"),
    ]
