"""The deny side follows what a global can reach (issue 10 item 6), checked against the interpreter itself.

``pickle_reach.py`` is derived from the standard library by ``pickle_reach_gen`` (module attributes that are modules,
functions whose code calls a file, import, exec or process sink). Here the derivation runs again on this interpreter
and every alias of a refused module, and every sink-reaching function, must be refused; then samples reach their
payload through an alias or a wrapper under the recording oracle, and their inert twins stay allowed or reviewable.
"""

from __future__ import annotations

import sys

import pytest

from oracle import record
from gatekeeper.detectors import pickle_reach, pickle_reach_gen
from gatekeeper.detectors.content import scan_blob
from gatekeeper.detectors.pickle_profiles import Classification, classify_global
from gatekeeper.model import Verdict

SAME_PYTHON = sys.version_info[:2] == pickle_reach.GENERATED_WITH


@pytest.fixture(scope="module")
def derived() -> dict[str, dict[str, object]]:
    return pickle_reach_gen.derive()


def _refused(dotted: str) -> bool:
    module, _, name = dotted.partition(".")
    return classify_global(module, name, frozenset())[0] is Classification.DENY


@pytest.mark.skipif(not SAME_PYTHON, reason="tables generated with another Python: regenerate pickle_reach.py")
def test_committed_tables_cover_this_interpreter(derived: dict[str, dict[str, object]]) -> None:
    assert set(derived["aliases"]) <= set(pickle_reach.MODULE_ALIASES), "regenerate pickle_reach.py"
    assert set(derived["reaches"]) <= pickle_reach.REACHES, "regenerate pickle_reach.py"


def test_every_alias_of_a_refused_module_is_refused(derived: dict[str, dict[str, object]]) -> None:
    missed = [f"{alias} -> {target}" for alias, target in derived["aliases"].items()
              if _refused(f"{target}.x") and not _refused(f"{alias}.x")]
    assert not missed


def test_every_sink_reaching_function_is_refused(derived: dict[str, dict[str, object]]) -> None:
    missed = [f for f in derived["reaches"] if not _refused(f)]
    assert not missed


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def sglobal(module: str, name: str) -> bytes:
    return (b"\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)]) + name.encode()
            + b"\x93")


def call1(func: bytes, arg: str) -> bytes:
    return b"\x80\x04" + func + b"\x8c" + bytes([len(arg)]) + arg.encode() + b"\x85R."


@pytest.mark.parametrize(("module", "name", "reached"), [
    ("random", "_os.system", ("random", "_os.system")),
    ("collections", "_sys.modules.get", ("collections", "_sys.modules.get")),
    ("enum", "bltns.eval", ("enum", "bltns.eval")),
    ("argparse", "_os.system", ("argparse", "_os.system")),
    ("codecs", "open", ("codecs", "open")),  # opens (and creates) files like open()
    ("linecache", "updatecache", ("linecache", "updatecache")),
    ("pathlib", "Path.write_text", ("pathlib", "Path.write_text")),
    ("encodings", "search_function", ("encodings", "search_function")),  # __import__ of its argument
    ("mypkg", "_subprocess.run", ("mypkg", "_subprocess.run")),  # the private-alias idiom outside the stdlib
])
def test_aliases_and_wrappers_reach_their_payload_and_are_malicious(module: str, name: str,
                                                                     reached: tuple[str, str]) -> None:
    data = call1(sglobal(module, name), "id")
    assert record(data).globals == [reached]  # protocol 4 resolves the dotted name by getattr traversal
    findings = scan_blob("model.pkl", data)
    assert findings and findings[0].verdict is Verdict.MALICIOUS, findings


@pytest.mark.parametrize(("module", "name"), [
    ("random", "Random"), ("collections", "OrderedDict"), ("enum", "Enum"), ("pathlib", "PurePosixPath"),
    ("codecs", "lookup_error"),
])
def test_inert_twins_are_not_malicious(module: str, name: str) -> None:
    findings = scan_blob("model.pkl", call1(sglobal(module, name), "x"))
    assert all(f.verdict is not Verdict.MALICIOUS for f in findings), findings
