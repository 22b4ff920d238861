"""Allow-list profiles and the deny list that classify one pickle global (``module``, ``name``).

Three outcomes (reference ml-artifacts.md §3.2, §3.3):

* ``DENY``   -> malicious: any dotted prefix of ``module.name`` is on the deny list, or, because ``find_class``
  resolves a dotted *name* by ``getattr`` traversal (protocol 4), any chain that starts at a component of the *name*
  (``pathlib`` + ``os.system`` is ``os.system``; ``numpy`` + ``core._internal.sys.modules`` is ``sys.modules``).
  Components are matched whole, never as substrings (modelscan flags ``evaluate`` that way).
* ``ALLOW``  -> the global is on the active profile (or the repository's ``extra_globals``). The deny list wins:
  ``os``/``sys``/``posix``/``nt`` and friends are refused even when a repository allow-lists them (as torch does).
* ``REVIEW`` -> everything else: a global that is not known to be inert needs a human (§0: the 2024 sabotage used no
  ``os.system``).

The torch profile is exactly what ``torch.load(weights_only=True)`` accepts (``torch/_weights_only_unpickler.py``
``_get_allowed_globals`` plus ``_tensor_rebuild_functions``), the numpy profile what ``np.load`` of object arrays and
torch checkpoints holding numpy arrays need.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable

from gatekeeper.detectors.pickle_reach import MODULE_ALIASES, REACHES

__all__ = ["Classification", "PROFILES", "classify_global", "profile_globals", "LOADS_LIKE", "UnknownProfile"]


class Classification(enum.Enum):
    ALLOW = "allow"
    REVIEW = "review"
    DENY = "deny"


class UnknownProfile(ValueError):
    """A profile name that does not exist (a configuration error, raised before any scanning)."""


# str(dtype) of every dtype torch allows: ``_dtype_to_storage_type_map()``, ``_new_dtypes()``, uint1-7, int1-7. Only
# canonical names: str(torch.long) is "torch.int64", so aliases such as ``torch.long`` are not on torch's list.
_TORCH_DTYPES = (
    "float32 float64 float16 bfloat16 complex32 complex64 complex128 uint8 uint16 uint32 uint64 int8 int16 int32 "
    "int64 bool quint8 qint8 qint32 quint4x2 quint2x4 float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz "
    "float8_e8m0fnu float4_e2m1fn_x2 bits1x8 bits2x4 bits4x2 bits8 bits16 "
    "uint1 uint2 uint3 uint4 uint5 uint6 uint7 int1 int2 int3 int4 int5 int6 int7"
).split()

_TORCH_SCALAR_TYPES = (
    "Float Double Half BFloat16 Long Int Short Char Byte Bool ComplexFloat ComplexDouble QUInt8 QInt8 QInt32 "
    "QUInt4x2 QUInt2x4"
).split()

# torch/_weights_only_unpickler.py ``_tensor_rebuild_functions()``
_TORCH_REBUILD = (
    "_rebuild_parameter _rebuild_parameter_with_state _rebuild_qtensor _rebuild_tensor _rebuild_tensor_v2 "
    "_rebuild_tensor_v3 _rebuild_sparse_tensor _rebuild_meta_tensor_no_storage _rebuild_wrapper_subclass "
    "_rebuild_device_tensor_from_numpy _rebuild_device_tensor_from_cpu_tensor"
).split()


def _torch_globals() -> frozenset[str]:
    """``_get_allowed_globals()`` of torch/_weights_only_unpickler.py, as ``module.name`` strings."""
    names = {
        "collections.OrderedDict",
        "collections.Counter",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.set",
        "builtins.complex",
        # torch._storage_classes: the legacy typed storages live in module "torch", the new ones in torch.storage
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "torch.per_tensor_affine",
        "torch.per_tensor_symmetric",
        "torch.per_channel_affine",
        "torch.per_channel_symmetric",
        "torch.per_channel_affine_float_qparams",
        "torch._tensor._rebuild_from_type_v2",
    }
    names.update(f"torch.{d}" for d in _TORCH_DTYPES)
    for kind in _TORCH_SCALAR_TYPES:
        # torch._tensor_classes / torch._storage_classes, named f"{cls.__module__}.{cls.__name__}"
        names.add(f"torch.{kind}Storage")
        names.add(f"torch.{kind}Tensor")
        names.add(f"torch.cuda.{kind}Storage")
        names.add(f"torch.cuda.{kind}Tensor")
        names.add(f"torch.sparse.{kind}Tensor")
        names.add(f"torch.cuda.sparse.{kind}Tensor")
    names.update(f"torch._utils.{f}" for f in _TORCH_REBUILD)
    return frozenset(names)


_NUMPY_GLOBALS = frozenset(
    {
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "_codecs.encode",
        # dtype classes numpy >= 1.25 pickles for ``np.dtype`` objects (``numpy.dtypes.Float64DType`` ...) are
        # deliberately not listed: they are review-required until a repository adds them.
    }
)

PROFILES: dict[str, frozenset[str]] = {
    "torch": _torch_globals(),
    "numpy": _NUMPY_GLOBALS,
    "joblib": _NUMPY_GLOBALS | {"joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle.NDArrayWrapper"},
    "none": frozenset(),
}


def profile_globals(profile: str, extra_globals: Iterable[str] = ()) -> frozenset[str]:
    """The allowed ``module.name`` strings for a profile; ``+`` combines profiles (``torch+numpy``).

    Raises:
        UnknownProfile: a component is not a known profile name.
    """
    return _profile_globals(profile, frozenset(extra_globals))


@functools.lru_cache(maxsize=64)
def _profile_globals(profile: str, extra_globals: frozenset[str]) -> frozenset[str]:
    allowed: set[str] = set(extra_globals)
    for part in profile.split("+"):
        try:
            allowed |= PROFILES[part.strip()]
        except KeyError:
            raise UnknownProfile(f"unknown pickle profile {part!r}; known: {', '.join(sorted(PROFILES))}") from None
    return frozenset(allowed)


# Modules refused as a whole (any attribute of them). Union of picklescan ``_unsafe_globals``, fickling
# ``UNSAFE_IMPORTS``/``UnsafeImportsML``, the Hydra blocklist and the gadgets of reference §9.1;
# ``os``/``posix``/``nt`` and ``sys`` head the list because torch refuses them even when allow-listed.
_DENY_MODULES = frozenset(
    """
    os posix nt sys subprocess _posixsubprocess socket _socket shutil pty runpy ssl _ssl paramiko pycurl
    importlib imp marshal inspect pkgutil operator _operator functools _functools ctypes _ctypes cffi code
    codeop commands pdb bdb ipdb timeit webbrowser antigravity this http httplib urllib urllib2 urllib3 requests
    aiohttp httpx asyncio multiprocessing _multiprocessing threading _thread concurrent signal _signal pickle
    _pickle cPickle dill cloudpickle joblib.load joblib.numpy_pickle.load joblib.numpy_pickle.NumpyUnpickler
    joblib.parallel joblib.Parallel joblib.memory shelve io _io logging.FileHandler logging.handlers
    logging.config logging.basicConfig logging.StreamHandler types.CodeType types.FunctionType types.LambdaType
    types.MethodType types.ModuleType types.CellType site sysconfig ensurepip venv pip setuptools distutils
    lib2to3 idlelib doctest trace profile cProfile pstats uuid._get_command_stdout uuid._popen
    uuid._ipconfig_getnode uuid._ifconfig_getnode imaplib smtplib ftplib poplib telnetlib nntplib mailcap
    _osx_support _aix_support _pyrepl pydoc test.support test.libregrtest xmlrpc socketserver zipimport
    _interpreters _xxsubinterpreters _winapi msvcrt winreg _winreg resource psutil tkinter _tkinter gc atexit
    platform compileall py_compile _sitebuiltins builtins __builtin__ __builtins__ copyreg copy_reg select
    selectors fcntl _imp _bootstrap _frozen_importlib _frozen_importlib_external zipapp tempfile picklescan
    fickling modelscan modelaudit gatekeeper hydra omegaconf torch.hub torch._dynamo torch._inductor torch.jit
    torch.compile torch.package torch.utils.bottleneck torch.utils.collect_env torch.utils.data.datapipes
    torch.utils.cpp_extension torch.fx torch.distributed torch.multiprocessing torch.testing torch._export
    torch.export torch.library torch.ops torch._ops torch._C._jit torch.storage._load_from_bytes torch.load
    torch.serialization.load torch._weights_only_unpickler torch.utils._config_module torch._functorch
    torch.autograd.profiler numpy.f2py numpy.distutils numpy.testing numpy.load numpy.lib.npyio numpy.ctypeslib
    numpy.lib.utils numpy.core._internal numpy._core._internal numpy.fromfile numpy.memmap pandas.read_pickle
    pandas.io pandas.eval pandas.core.computation keras.saving tensorflow.python.ops.script_ops tensorflow.io
    tensorflow.keras.utils
    """.split()
) | frozenset(
    # Third-party loaders and writers under the names their packages really define them (the reachability table
    # covers the standard library only): numpy 2's private homes of np.load/np.save, writers that create or
    # truncate files, and torch.utils.model_zoo.load_url, which is torch.hub.load_state_dict_from_url (download and
    # torch.load); Keras helpers that download files, load other models or switch off safe_mode.
    # torch.serialization and joblib.numpy_pickle are listed by function: their allow-listed
    # _get_layout and NumpyArrayWrapper live there.
    """
    numpy.lib._npyio_impl numpy.lib._format_impl numpy.lib._utils_impl numpy.lib._datasource numpy.DataSource
    numpy.lib.format.open_memmap numpy.lib.format.read_array numpy.lib.format.write_array numpy.save numpy.savez
    numpy.savez_compressed numpy.savetxt numpy.core.memmap numpy._core.memmap torch.save torch.from_file
    torch.serialization._load torch.serialization._legacy_load torch.serialization.save torch.utils.model_zoo
    joblib.dump joblib.numpy_pickle.dump joblib.numpy_pickle_compat pandas.to_pickle
    keras.utils.get_file keras.src.utils.file_utils keras.config.enable_unsafe_deserialization
    keras.src.saving.serialization_lib.enable_unsafe_deserialization keras.src.saving.saving_api
    keras.src.saving.saving_lib keras.src.legacy.saving keras.models.load_model
    """.split()
)

# builtins that are inert constructors: not malicious, but still review-required unless a profile allows them.
_SAFE_BUILTINS = frozenset(
    "set frozenset bytearray bytes complex dict list tuple int float str bool slice range object "
    "True False None NotImplemented Ellipsis".split()
)

# Callables that deserialize their argument: their str/bytes arguments are analysed as nested pickles (§3.3).
LOADS_LIKE = frozenset(
    {
        "pickle.loads",
        "pickle.load",
        "_pickle.loads",
        "_pickle.load",
        "cPickle.loads",
        "dill.loads",
        "dill._dill.loads",
        "cloudpickle.loads",
        "joblib.load",
        "numpy.load",
        "torch.load",
        "torch.serialization.load",
        "torch.storage._load_from_bytes",
        "marshal.loads",
    }
)


def _resolve_aliases(parts: list[str]) -> list[str]:
    """``parts`` with every module alias replaced by the module it is (``random._os.system`` -> ``os.system``)."""
    for _ in range(8):  # alias chains are short; the bound only guards against a cycle in the table
        for i in range(len(parts), 0, -1):
            target = MODULE_ALIASES.get(".".join(parts[:i]))
            if target is not None:
                parts = target.split(".") + parts[i:]
                break
        else:
            return parts
    return parts


def _denied(dotted: list[str]) -> str | None:
    """Why the path is refused: a dotted prefix, after resolving module aliases, is deny-listed or reaches a sink."""
    resolved = _resolve_aliases(dotted)
    alias = "" if resolved == dotted else f" (the alias of {'.'.join(resolved)})"
    for parts in (dotted, resolved):
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in _DENY_MODULES:
                return f"on the deny list{alias}"
            if prefix in REACHES:
                return f"{prefix} opens files, imports or runs code{alias}"
        if parts is resolved and alias and parts[0] in ("builtins", "__builtin__", "__builtins__") and not (
                len(parts) == 2 and parts[1] in _SAFE_BUILTINS):
            return f"builtins outside the inert set{alias}"
    return None


def _private_alias(part: str) -> bool:
    # ``import os as _os`` is the idiom: a private attribute named like a deny-listed module is that module, in any
    # package (the derived alias table covers the standard library only).
    return part.startswith("_") and part.lstrip("_") in _DENY_MODULES


@functools.lru_cache(maxsize=8192)  # pure; a checkpoint names the same few globals thousands of times
def classify_global(module: str, name: str, allowed: frozenset[str]) -> tuple[Classification, str]:
    """Classify ``module``/``name`` as a pickle ``find_class`` would resolve it.

    Returns:
        The classification and a short reason for the evidence line.
    """
    mod_parts = module.split(".")
    name_parts = name.split(".")
    full = mod_parts + name_parts
    if not name and all(mod_parts):
        # find_class(module, "") imports the module (its import-time code runs), then getattr fails: what a GLOBAL
        # cut off at the end of the data does in the pure-Python unpickler. The module decides.
        if _denied(mod_parts) or mod_parts[0] in ("builtins", "__builtin__", "__builtins__"):
            return Classification.DENY, "imports a deny-listed module"
        return Classification.REVIEW, "imports a module (empty name)"
    if any(not part for part in full):
        # ``find_class("os.", "system")`` or an empty name: not resolvable by any loader in a benign way.
        return Classification.DENY, "empty dotted component"
    # Builtins: the whole module is on the deny list except a small set of inert constructors.
    if mod_parts[0] in ("builtins", "__builtin__", "__builtins__") and len(mod_parts) == 1:
        if len(name_parts) == 1 and name_parts[0] in _SAFE_BUILTINS:
            full_name = f"builtins.{name}"
            if full_name in allowed:
                return Classification.ALLOW, "on the allow-list"
            return Classification.REVIEW, "builtin constructor outside the allow-list profile"
        return Classification.DENY, "builtins outside the inert set"
    why = _denied(full)
    if why is not None:
        return Classification.DENY, why
    # getattr traversal through the name: every chain that starts at a name component is checked as a module path.
    for start in range(len(mod_parts), len(full)):
        if _denied(full[start:]) or _private_alias(full[start]) or full[start] in (
                "__builtins__", "__globals__", "__import__", "__class__", "__subclasses__", "__reduce__",
                "__reduce_ex__", "__code__", "__dict__", "__getattribute__", "__setattr__"):
            return Classification.DENY, f"attribute traversal reaches {'.'.join(full[start:])}"
    if ".".join(full) in allowed:
        return Classification.ALLOW, "on the allow-list"
    return Classification.REVIEW, "not on the allow-list profile"
