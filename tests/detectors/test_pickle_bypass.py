"""Pickle bypass families of reference ml-artifacts.md §9 (1-4, 13), each as a malicious sample and a benign twin.

Every sample is written opcode by opcode (nothing is ever unpickled). Expectations: the malicious sample is
MALICIOUS (or, for pure structure tricks without a global, at least blocking), the benign twin is clean or exactly
the verdict stated.
"""

from __future__ import annotations

import struct

import pytest

from gatekeeper.detectors.content import ScanOptions
from gatekeeper.detectors.content import scan_blob
from gatekeeper.detectors.pickle_profiles import Classification
from gatekeeper.detectors.pickle_profiles import classify_global
from gatekeeper.detectors.pickle_profiles import profile_globals
from gatekeeper.detectors.pickle_vm import Limits
from gatekeeper.detectors.pickle_vm import analyse_pickle
from gatekeeper.model import Verdict

# ---------------------------------------------------------------------------------------------- opcode builders
STOP, MARK, POP, TUPLE, TUPLE1, TUPLE2 = b".", b"(", b"0", b"t", b"\x85", b"\x86"
REDUCE, BUILD, SETITEM, EMPTY_DICT, EMPTY_TUPLE, EMPTY_LIST = b"R", b"b", b"s", b"}", b")", b"]"
NEWOBJ, NEWOBJ_EX, OBJ, STACK_GLOBAL, MEMOIZE, NONE, APPENDS = b"\x81", b"\x92", b"o", b"\x93", b"\x94", b"N", b"e"


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def inst(module: str, name: str) -> bytes:
    return b"i" + module.encode() + b"\n" + name.encode() + b"\n"


def sbu(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def binu(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def string0(text: str) -> bytes:
    return b"S'" + text.encode() + b"'\n"


def binbytes(raw: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(raw)) + raw


def binput(i: int) -> bytes:
    return b"q" + bytes([i])


def binget(i: int) -> bytes:
    return b"h" + bytes([i])


def frame(n: int) -> bytes:
    return b"\x95" + struct.pack("<Q", n)


def sglobal(module: str, name: str) -> bytes:
    return sbu(module) + MEMOIZE + sbu(name) + MEMOIZE + STACK_GLOBAL


def call(head: bytes, arg: str = "id") -> bytes:
    return head + binu(arg) + TUPLE1 + REDUCE


def p2(body: bytes) -> bytes:
    return proto(2) + body + STOP


def p4(body: bytes) -> bytes:
    return proto(4) + body + STOP


BENIGN = p2(glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE)


def worst(data: bytes, path: str = "sample.pkl", options: ScanOptions = ScanOptions()) -> str:
    findings = scan_blob(path, data, options)
    return findings[0].verdict.value if findings else "clean"


def messages(data: bytes, path: str = "sample.pkl") -> str:
    return "\n".join(f"{f.verdict.value}: {f.message} | {' / '.join(f.evidence)}" for f in scan_blob(path, data))


MAL = Verdict.MALICIOUS.value
REV = Verdict.REVIEW.value
UNS = Verdict.UNSCANNABLE.value


def test_benign_baseline_is_clean() -> None:
    assert worst(BENIGN) == "clean"
    assert worst(p4(sglobal("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE)) == "clean"


# ---------------------------------------------------------------------------------------------- 1. deny-list gaps
DENY_GAPS = [
    ("importlib", "import_module"), ("inspect", "getattr_static"), ("pkgutil", "resolve_name"),
    ("marshal", "loads"), ("types", "FunctionType"), ("types", "CodeType"), ("http.server", "HTTPServer"),
    ("mailcap", "findmatch"), ("ctypes", "CDLL"), ("signal", "raise_signal"), ("_interpreters", "create"),
    ("multiprocessing.util", "spawnv_passfds"), ("torch.storage", "_load_from_bytes"), ("torch.hub", "load"),
    ("_operator", "attrgetter"), ("operator", "methodcaller"), ("_io", "FileIO"), ("logging", "FileHandler"),
    ("urllib.request", "urlopen"), ("cloudpickle.cloudpickle", "_make_function"), ("pip", "main"),
    ("venv", "create"), ("pydoc", "pipepager"), ("torch._inductor.codecache", "compile_file"),
    ("functools", "partial"), ("asyncio.unix_events", "_UnixSubprocessTransport._start"),
    ("torch.utils.bottleneck.__main__", "run_cprofile"), ("torch._dynamo.guards", "GuardBuilder.get"),
    ("torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression"),
    ("torch.utils.collect_env", "run"), ("torch.utils.data.datapipes.utils.decoder", "basichandlers"),
    ("torch.jit.unsupported_tensor_ops", "execWrapper"), ("torch.utils._config_module", "ConfigModule.load_config"),
    ("trace", "Trace.run"), ("profile", "run"), ("cProfile", "runctx"), ("lib2to3.pgen2.grammar", "Grammar.loads"),
    ("idlelib.pyshell", "ModifiedInterpreter.runcode"), ("code", "InteractiveInterpreter.runcode"),
    ("doctest", "debug_script"), ("ensurepip", "_run_pip"), ("uuid", "_get_command_stdout"),
    ("imaplib", "IMAP4_stream"), ("_osx_support", "_read_output"), ("_aix_support", "_read_cmd_output"),
    ("_pyrepl.pager", "pipe_pager"), ("test.support.script_helper", "assert_python_ok"), ("os", "system"),
    ("posix", "system"), ("nt", "system"), ("subprocess", "Popen"), ("builtins", "eval"), ("builtins", "exec"),
    ("builtins", "getattr"), ("builtins", "__import__"), ("__builtin__", "compile"), ("sys", "modules"),
    ("runpy", "_run_code"), ("timeit", "timeit"), ("torch", "load"), ("numpy", "load"), ("dill", "loads"),
    ("copyreg", "add_extension"), ("picklescan.scanner", "scan_pickle_bytes"), ("hydra.utils", "instantiate"),
]


@pytest.mark.parametrize(("module", "name"), DENY_GAPS, ids=[f"{m}.{n}" for m, n in DENY_GAPS])
def test_deny_list_gap_global_is_malicious(module: str, name: str) -> None:
    assert worst(p2(call(glob(module, name)))) == MAL, messages(p2(call(glob(module, name))))
    assert worst(p4(call(sglobal(module, name)))) == MAL
    finding = scan_blob("x.pkl", p2(call(glob(module, name))))[0]
    assert f"global {module}.{name}" in finding.message and "at offset 2" in finding.message


@pytest.mark.parametrize(
    ("module", "name"),
    [("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch", "FloatStorage"),
     ("_codecs", "encode"), ("builtins", "set"), ("torch", "Size")],
)
def test_benign_twin_allow_listed_global_is_clean(module: str, name: str) -> None:
    assert worst(p2(call(glob(module, name)))) == "clean"


def test_unknown_global_needs_review_not_malicious() -> None:
    data = p2(call(glob("mypkg.models", "Net")))
    findings = scan_blob("x.pkl", data)
    assert [f.verdict for f in findings] == [Verdict.REVIEW]
    assert findings[0].message == "global mypkg.models.Net (not on the allow-list profile) at offset 2"
    # whole components, never substrings: "evaluate" is not "eval", "osmosis" is not "os"
    assert worst(p2(call(glob("evaluate", "load_metric")))) == REV
    assert worst(p2(call(glob("osmosis", "system")))) == REV


def test_torch_profile_is_torchs_weights_only_list() -> None:
    allowed = profile_globals("torch")
    for name in ("torch.int64", "torch.bfloat16", "torch.uint4", "torch.float8_e4m3fn", "torch.FloatStorage",
                 "torch.cuda.HalfTensor", "torch.storage.UntypedStorage", "torch._utils._rebuild_tensor_v2",
                 "torch._tensor._rebuild_from_type_v2", "torch.per_channel_affine", "collections.Counter"):
        assert name in allowed, name
    # str(torch.long) is "torch.int64": aliases are not on torch's list; nor are classes torch never allow-listed
    for name in ("torch.long", "torch.float", "torch.nn.Module", "torch._utils._rebuild_nested_tensor",
                 "torch.UntypedStorage", "numpy.ndarray"):
        assert name not in allowed, name
    assert len(allowed) == len(set(allowed))


def test_builtin_constructor_outside_profile_is_review() -> None:
    assert worst(p2(call(glob("builtins", "dict")))) == REV
    assert classify_global("builtins", "set", profile_globals("torch"))[0] is Classification.ALLOW


def test_extra_globals_allow_but_never_override_the_deny_list() -> None:
    extra = ScanOptions(extra_globals=frozenset({"mypkg.models.Net", "os.system"}))
    assert worst(p2(call(glob("mypkg.models", "Net"))), options=extra) == "clean"
    assert worst(p2(call(glob("os", "system"))), options=extra) == MAL


def test_numpy_profile() -> None:
    data = p2(call(glob("numpy.core.multiarray", "_reconstruct")))
    assert worst(data) == REV
    assert worst(data, options=ScanOptions(profile="torch+numpy")) == "clean"
    assert scan_blob("x", data, ScanOptions(profile="nope"))[0].message.startswith("invalid scan options")


# ---------------------------------------------------------------------------------------------- 2. dotted names
DOTTED = [
    ("pathlib", "os.system"), ("shutil", "os.system"), ("numpy", "testing._private.utils.runstring"),
    ("numpy", "__builtins__"), ("numpy", "core._internal.sys.modules"), ("torch", "_utils.os.system"),
    ("collections", "OrderedDict.__class__"), ("torch.nn", "Module.__subclasses__"), ("os.", "system"),
]


@pytest.mark.parametrize(("module", "name"), DOTTED, ids=[f"{m}+{n}" for m, n in DOTTED])
def test_dotted_name_traversal_is_malicious(module: str, name: str) -> None:
    data = p4(call(sglobal(module, name)))
    assert worst(data) == MAL, messages(data)


def test_dotted_name_benign_twin_is_clean() -> None:
    assert worst(p4(call(sglobal("torch", "_utils._rebuild_tensor_v2")))) == "clean"
    assert worst(p4(call(sglobal("mypkg", "layers.Dense")))) == REV


# ---------------------------------------------------------------------------------------------- 3. opcode obfuscation
def test_stack_global_fed_by_string_opcodes() -> None:
    mal = proto(2) + string0("os") + string0("system") + STACK_GLOBAL + string0("id") + TUPLE1 + REDUCE + STOP
    ben = proto(2) + string0("collections") + string0("OrderedDict") + STACK_GLOBAL + EMPTY_TUPLE + REDUCE + STOP
    assert worst(mal) == MAL
    assert worst(ben) == "clean"
    short = b"U\x02os" + b"U\x06system" + STACK_GLOBAL + NONE + TUPLE1 + REDUCE + STOP  # SHORT_BINSTRING, protocol 1
    assert worst(short) == MAL


def test_stack_global_via_put_get_and_memoize() -> None:
    put_get = sbu("os") + binput(7) + POP + sbu("system") + binput(9) + POP + NONE + POP + binget(7) + binget(9)
    assert worst(p4(put_get + STACK_GLOBAL + NONE + TUPLE1 + REDUCE)) == MAL
    memo = sbu("posix") + MEMOIZE + POP + sbu("system") + MEMOIZE + POP + binget(0) + binget(1)
    assert worst(p4(memo + STACK_GLOBAL + NONE + TUPLE1 + REDUCE)) == MAL
    # the misleading "previous argument" picklescan would pick is "collections"/"OrderedDict"
    twist = (sbu("os") + binput(0) + POP + sbu("system") + binput(1) + POP + sbu("collections") + sbu("OrderedDict")
             + POP + POP + binget(0) + binget(1) + STACK_GLOBAL + NONE + TUPLE1 + REDUCE)
    assert worst(p4(twist)) == MAL
    benign = sbu("collections") + binput(0) + POP + sbu("OrderedDict") + binput(1) + POP + binget(0) + binget(1)
    assert worst(p4(benign + STACK_GLOBAL + EMPTY_TUPLE + REDUCE)) == "clean"


def test_stack_global_with_missing_or_int_memo_key() -> None:
    missing = p4(sbu("os") + binget(5) + STACK_GLOBAL + NONE + TUPLE1 + REDUCE)
    assert worst(missing) == UNS  # GET before PUT before any global: blocks, cannot be vouched for
    after_bad = p4(call(glob("os", "system")) + POP + binget(5) + STACK_GLOBAL)
    assert worst(after_bad) == MAL
    int_key = p4(b"J" + struct.pack("<i", 42) + MEMOIZE + sbu("system") + binget(0) + binget(0) + STACK_GLOBAL
                 + POP + POP)
    msgs = messages(int_key)
    assert worst(int_key) == MAL and "STACK_GLOBAL with operands that are not plain strings" in msgs


def test_build_setattr_on_a_global_then_lookup() -> None:
    # modelscan#85 shape: BUILD on a class/module changes what a later find_class returns.
    mal = p4(sglobal("torch._utils", "_rebuild_tensor_v2") + EMPTY_DICT + sbu("x") + sbu("builtins") + SETITEM
             + BUILD + POP + sglobal("torch._utils", "_rebuild_tensor_v2") + NONE + TUPLE1 + REDUCE)
    assert worst(mal) == MAL
    assert "BUILD mutates global torch._utils._rebuild_tensor_v2" in messages(mal)
    benign = p2(glob("collections", "OrderedDict") + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + sbu("a") + NONE + SETITEM
                + BUILD)
    assert worst(benign) == "clean"


def test_build_with_dunder_slot_state_needs_review() -> None:
    obj = glob("collections", "OrderedDict") + EMPTY_TUPLE + NEWOBJ
    swap = p2(obj + NONE + EMPTY_DICT + binu("__class__") + glob("mypkg", "Evil") + SETITEM + TUPLE2 + BUILD)
    assert worst(swap) == REV and "BUILD sets dunder attribute '__class__'" in messages(swap)
    plain = p2(obj + EMPTY_DICT + binu("_metadata") + NONE + SETITEM + BUILD)
    assert worst(plain) == "clean"


def test_obj_inst_newobj_ex_and_discarded_results() -> None:
    assert worst(p2(MARK + glob("os", "system") + binu("id") + OBJ + POP + NONE)) == MAL
    assert worst(p2(MARK + glob("collections", "OrderedDict") + OBJ)) == "clean"
    assert worst(p2(MARK + binu("id") + inst("os", "system"))) == MAL
    assert worst(p2(MARK + inst("collections", "OrderedDict"))) == "clean"
    assert worst(p4(sglobal("subprocess", "Popen") + EMPTY_TUPLE + EMPTY_DICT + NEWOBJ_EX)) == MAL
    assert worst(p4(sglobal("collections", "OrderedDict") + EMPTY_TUPLE + EMPTY_DICT + NEWOBJ_EX)) == "clean"
    assert worst(p2(call(glob("os", "system")) + POP + NONE)) == MAL


def test_unregistered_ext_codes_are_refused() -> None:
    # copyreg's registry is empty in a plain interpreter: the load fails there, and means whatever the loading
    # process registered elsewhere. Nothing to approve: unscannable.
    for ext in (b"\x82\x01", b"\x83\x01\x02", b"\x84\x01\x02\x03\x04"):
        data = p2(ext + EMPTY_TUPLE + REDUCE)
        assert worst(data) == UNS, messages(data)
    assert "extension code 1 is not registered" in messages(p2(b"\x82\x01"))


def test_registered_ext_codes_are_the_global_they_stand_for() -> None:
    import copyreg

    from oracle import record

    copyreg.add_extension("os", "system", 0xBEEF)
    copyreg.add_extension("collections", "OrderedDict", 0xBEF0)
    try:
        mal = p2(b"\x83\xef\xbe" + binu("id") + TUPLE1 + REDUCE)
        assert record(mal).globals == [("os", "system")]  # CPython calls find_class with the registered pair
        assert worst(mal) == MAL and "os.system" in messages(mal)
        benign = p2(b"\x83\xf0\xbe" + EMPTY_TUPLE + REDUCE)
        assert worst(benign) == "clean"
    finally:
        copyreg.remove_extension("os", "system", 0xBEEF)
        copyreg.remove_extension("collections", "OrderedDict", 0xBEF0)


def test_protocol_0_text_pickle() -> None:
    assert worst(b"cos\nsystem\n(S'id'\ntR.") == MAL
    assert worst(b"ccollections\nOrderedDict\n(tR.") == "clean"
    assert worst(b"(lp0\nVa\nap1\n.") == "clean"


def test_nested_pickle_passed_to_a_loads_like_global() -> None:
    inner = p2(call(glob("os", "system")))
    mal = p2(glob("torch.storage", "_load_from_bytes") + binbytes(inner) + TUPLE1 + REDUCE)
    msgs = messages(mal)
    assert worst(mal) == MAL and "nested pickle" in msgs and "os.system" in msgs
    # a bytes constant that is itself a malicious pickle is analysed even without a loads-like global
    assert worst(p2(binbytes(inner))) == MAL
    assert worst(p2(binbytes(b"\x80\x02plain tensor bytes, not a pickle" * 3))) == "clean"
    assert worst(p2(binbytes(p2(NONE)))) == "clean"


def test_nested_pickle_behind_decoder_chains() -> None:
    import base64
    import zlib

    inner = p2(call(glob("os", "system")))
    b64 = glob("base64", "b64decode") + binu(base64.b64encode(inner).decode()) + TUPLE1 + REDUCE
    mal = p2(glob("pickle", "loads") + b64 + TUPLE1 + REDUCE)
    msgs = messages(mal)
    assert worst(mal) == MAL and "argument of pickle.loads (decoded)" in msgs and "os.system" in msgs
    chained = glob("zlib", "decompress") + glob("codecs", "decode") + binu(zlib.compress(inner).hex()) + binu("hex") \
        + TUPLE2 + REDUCE + TUPLE1 + REDUCE
    msgs = messages(p2(glob("dill", "loads") + chained + TUPLE1 + REDUCE))
    assert "(decoded)" in msgs and "os.system" in msgs
    # the benign twin: a decoder on data that is not a pickle is only an unknown global
    assert worst(p2(glob("base64", "b64decode") + binu("aGVsbG8=") + TUPLE1 + REDUCE)) == REV


# ---------------------------------------------------------------------------------------------- 4. stream structure
def test_payload_in_a_later_concatenated_pickle() -> None:
    assert worst(BENIGN + BENIGN + p4(call(sglobal("os", "system")))) == MAL
    assert worst(BENIGN + BENIGN + BENIGN) == "clean"


def test_payload_before_a_parse_error() -> None:
    mal = proto(2) + call(glob("builtins", "exec")) + b"X\xff\xff\xff\x7f" + b"junk"
    assert worst(mal) == MAL
    assert "structural anomaly after a non-allow-listed global" in messages(mal)
    truncated_benign = proto(2) + glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE + b"X\x10\x00\x00"
    assert worst(truncated_benign) == UNS
    assert worst(BENIGN + b"\n\n garbage") == UNS
    assert worst(BENIGN + b"cython\nnumpy\nrequests\n") == UNS  # text after STOP: blocks, but is no attack
    assert worst(BENIGN + b"cos\nsystem\n(S'id'\ntR") == MAL  # a known-bad global in the tail is
    assert worst(p2(call(glob("os", "system"))) + b"\n\n\t\t") == MAL


def test_frame_straddle() -> None:
    body = sbu("collections") + MEMOIZE + sbu("OrderedDict") + MEMOIZE + STACK_GLOBAL + EMPTY_TUPLE + REDUCE + STOP
    good = proto(4) + frame(len(body)) + body
    assert worst(good) == "clean"
    straddle = proto(4) + frame(5) + body  # frame ends inside the "collections" argument
    assert worst(straddle) == UNS
    assert "straddles a FRAME boundary" in messages(straddle)
    mal_body = sbu("os") + MEMOIZE + sbu("system") + MEMOIZE + STACK_GLOBAL + NONE + TUPLE1 + REDUCE + STOP
    assert worst(proto(4) + frame(2) + mal_body) == MAL
    assert worst(proto(4) + frame(10_000) + body) == UNS  # frame longer than the data


def test_misplaced_or_duplicate_proto() -> None:
    assert worst(proto(2) + NONE + proto(2) + STOP) == UNS
    assert worst(proto(2) + call(glob("os", "system")) + proto(4) + STOP) == MAL
    assert worst(proto(2) + NONE + STOP) == "clean"
    assert worst(proto(9) + NONE + STOP) == "clean"  # no loader accepts protocol 9: nothing can run
    assert worst(proto(1) + call(glob("os", "system"))) == MAL  # PROTO 0/1 found by the bounded probe


def test_billion_laughs_and_deep_stacks_hit_caps_not_timeouts() -> None:
    # 200 nested lists, each holding 100 references to the previous one: 100**200 elements once materialised.
    level = b"".join(EMPTY_LIST + MARK + binget(i) * 100 + APPENDS + b"r" + struct.pack("<I", i + 1) + POP
                     for i in range(200))
    laughs = proto(4) + EMPTY_LIST + binput(0) + POP + level + NONE + STOP
    msgs = messages(laughs)
    assert worst(laughs) == UNS and "expansion" in msgs
    small = proto(4) + EMPTY_LIST + binput(0) + MARK + binget(0) * 10 + APPENDS + STOP
    assert worst(small) == "clean"
    deep = proto(2) + MARK * 20_000 + STOP
    assert worst(deep) == UNS and "stack depth" in messages(deep)
    many = proto(2) + (NONE + POP) * 2000 + NONE + STOP
    assert worst(many, options=ScanOptions(max_opcodes=1000)) == UNS
    assert worst(many) == "clean"
    assert worst(many, options=ScanOptions(time_budget_s=0.0)) == UNS
    bad_then_cap = proto(2) + call(glob("os", "system")) + (NONE + POP) * 2000 + STOP
    assert worst(bad_then_cap, options=ScanOptions(max_opcodes=100)) == MAL


def test_analyse_pickle_report_api() -> None:
    data = p4(call(sglobal("os", "system")))
    report = analyse_pickle(data, profile="torch")
    assert [(g.module, g.name, g.offset, g.opcode) for g in report.globals] == [("os", "system", 16, "STACK_GLOBAL")]
    assert report.verdict is Verdict.MALICIOUS and report.complete and report.pickles == 1
    clean = analyse_pickle(BENIGN, profile="torch")
    assert clean.verdict is None and clean.globals[0].classification is Classification.ALLOW
    capped = analyse_pickle(p2((NONE + POP) * 50 + NONE), limits=Limits(max_opcodes=10))
    assert capped.verdict is Verdict.UNSCANNABLE


def test_persistent_ids() -> None:
    storage = (MARK + binu("storage") + glob("torch", "FloatStorage") + binu("0") + binu("cpu") + b"K\x02" + TUPLE
               + b"Q")
    assert worst(p2(storage)) == "clean"
    assert worst(p2(binu("other") + b"Q")) == REV
    assert worst(p2(b"Pfoo\n")) == REV


# ---------------------------------------------------------------------------------------------- 13. sabotage
def test_sabotage_patching_an_optimizer_is_never_clean() -> None:
    # torch.optim.SGD.step replaced through BUILD on the class (setattr): malicious.
    patch = p2(glob("torch.optim", "SGD") + NONE + EMPTY_DICT + binu("step") + glob("torch.optim", "Adam") + SETITEM
               + TUPLE2 + BUILD)
    assert worst(patch) == MAL
    assert "BUILD mutates global torch.optim.SGD" in messages(patch)
    # ... through builtins.setattr
    setattr_patch = p2(glob("builtins", "setattr") + glob("torch.optim", "SGD") + binu("step") + NONE + b"\x87"
                       + REDUCE)
    assert worst(setattr_patch) == MAL
    # ... through exec of patch code, or a seed change through random.seed (an unknown global: review)
    code = "import torch.optim as o; o.SGD.step = lambda *a, **k: None"
    assert worst(p2(call(glob("builtins", "exec"), code))) == MAL
    assert worst(p2(glob("random", "seed") + b"K\x2a" + TUPLE1 + REDUCE)) == REV
    # ... through SETITEM on a module global dict
    assert worst(p2(glob("sys", "modules") + binu("torch") + NONE + SETITEM)) == MAL
    # the benign twin: an optimizer state dict of plain containers
    state = p2(EMPTY_DICT + binu("state") + EMPTY_DICT + SETITEM + binu("lr") + b"G" + struct.pack(">d", 0.1)
               + SETITEM)
    assert worst(state) == "clean"
