"""Hydra targets inside nodes that OmegaConf's ``oc.create``/``oc.decode`` build at resolution time (round 4).

``hydra.utils.instantiate`` runs ``OmegaConf.resolve`` first and then instantiates every ``_target_`` in the result,
so a target inside a resolver-built node is a target. When OmegaConf is installed, each sample is also resolved by it
(data only, nothing instantiated) as the reference: every target it builds must be reported, or a "cannot be checked"
trigger must stand in for it.
"""

from __future__ import annotations

import pytest

from machine import need

from gatekeeper.detectors.remote_code import extract_triggers
from gatekeeper.detectors.scan import dangerous_config_findings
from gatekeeper.model import Verdict

SAMPLES = [
    b"a: \"${oc.create:{_target_: shutil.os.system, _args_: [id]}}\"\n",
    b"a: ${oc.create:{_target_:shutil.os.system,_args_:[id]}}\n",
    b"a: \"${oc.create:{'_target_': 'mylib.Evil'}}\"\n",
    b"a: \"${oc.create:[{_target_: mylib.Evil}]}\"\n",
    b"a: \"${oc.create:{x: {y: {_target_: mylib.Deep}}}}\"\n",
    b"t: mylib.Split\na: \"${oc.create:{_target_: ${t}}}\"\n",
    b"s:\n  k: _target_\n  a: \"${oc.create:{${.k}: mylib.Keyed}}\"\n",
    b"s:\n  spec: \"{_tar\"\n  a: \"${oc.decode:'${.spec}get_: mylib.Assembled}'}\"\n",
    b"s:\n  a: \"${oc.decode:'{_target_: mylib.Decoded}'}\"\n",
    b"s:\n  a: \"${oc.create:${..missing}}\"\n",
    b"s:\n  a: \"${oc.create:{_t\\\\arget_: mylib.Escaped}}\"\n",
    b"a: \"${oc.create:${oc.select:zz,{}}}\"\n",
]

PLAIN = [
    b"a: \"${oc.create:{lr: 0.1, tags: [x, y]}}\"\n",
    b"a: \"${oc.decode:${oc.env:NUM_GPUS,1}}\"\n",
    b"d: {x: 1}\na: \"${oc.create:${d}}\"\n",
    b"a: \"${oc.decode:'[1, 2]'}\"\n",
]


def _omegaconf_targets(text: bytes) -> set[str] | None:
    try:
        from omegaconf import OmegaConf
    except ImportError:
        need(False, "omegaconf (the reference implementation these nodes are checked against; .[test])", "")
    try:
        cfg = OmegaConf.create(text.decode())
        OmegaConf.resolve(cfg)
        plain = OmegaConf.to_container(cfg)
    except Exception:  # noqa: BLE001 - the installed OmegaConf refuses this form: no reference for it
        return None
    found: set[str] = set()
    stack: list[object] = [plain]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("_target_"), str):
                found.add(node["_target_"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


@pytest.mark.parametrize("text", SAMPLES, ids=range(len(SAMPLES)))
def test_targets_in_built_nodes_are_triggers(text: bytes) -> None:
    triggers = extract_triggers(b"exp/a.yaml", text).triggers
    assert triggers, "a resolver-built node may hold a target: the config is a trigger"
    reported = {t.value for t in triggers if t.kind == "hydra"}
    unsure = any(t.problem for t in triggers)
    expected = _omegaconf_targets(text)
    if expected is not None:
        assert expected <= reported or unsure, (expected, reported)


def test_the_reference_builds_the_targets_of_several_samples() -> None:
    """The comparison above has teeth: the installed OmegaConf really builds target nodes from several samples
    (2.3 builds the oc.create forms; 2.4, checked by hand, the oc.decode ones)."""
    built = [found for text in SAMPLES if (found := _omegaconf_targets(text))]
    assert len(built) >= 2, built


@pytest.mark.parametrize("text", PLAIN, ids=range(len(PLAIN)))
def test_plain_resolver_uses_are_no_triggers(text: bytes) -> None:
    assert extract_triggers(b"exp/a.yaml", text).triggers == ()
    expected = _omegaconf_targets(text)
    assert expected in (None, set())


def test_a_shell_target_in_a_built_node_is_malicious_on_every_ref() -> None:
    findings = dangerous_config_findings(b"exp/a.yaml", SAMPLES[0])
    assert [f.verdict for f in findings] == [Verdict.MALICIOUS]
    assert "shutil.os.system" in findings[0].message


def test_resolver_argument_scan_is_bounded() -> None:
    text = b"a: \"" + b"${oc.create:{x: 1}}" * 5000 + b"\"\n"
    triggers = extract_triggers(b"exp/a.yaml", text).triggers
    assert [t.kind for t in triggers] == ["resolver"] and "more than" in (triggers[0].problem or "")
    text = b"a: \"${oc.create:" + b"{" * 3000 + b"\"\n"  # never closed: one pass to the end
    extract_triggers(b"exp/a.yaml", text)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("first", ["\u4e4e", "a", "\u0100"])
@pytest.mark.parametrize("quick", [False, True])
def test_wide_yaml_is_parsed_like_pyyaml_reads_it(encoding: str, first: str, quick: bool) -> None:
    """Whatever PyYAML decodes from bytes, the trigger search sees: the pre-filter and the quick path (unchanged
    configs) must not skip UTF-16 text, with or without a BOM and whatever its first character."""
    import yaml

    text = f"{first}: 1\ntrainer:\n  _target_: mylib.Net\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError:
        doc = None  # no BOM: PyYAML reads UTF-8, and NULs are not allowed there
    found = [t.value for t in extract_triggers(b"exp/a.yaml", data, quick=quick).triggers] if doc else []
    if doc is not None:
        assert found == ["mylib.Net"]
