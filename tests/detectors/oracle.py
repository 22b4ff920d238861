"""CPython's own unpickler as a test oracle: which globals would ``pickle.load`` resolve, without running anything.

``record(data)`` runs the pure-Python ``pickle._Unpickler`` (or, with ``unpickler=NATIVE``, the C one) with
a ``find_class`` that records ``(module, name)`` and returns an inert stub instead of importing. The stub accepts any
call, attribute, item and state, so CPython keeps going as far as the opcode stream lets it: the recorded globals are
a superset of what a real load resolves before it fails (a real callee might raise earlier). Nothing is imported,
called or executed; ``persistent_load`` is not defined (as in plain ``pickle.load``) unless ``persistent=True``.

Copyreg extension codes are resolved through ``copyreg._extension_registry`` by CPython before ``find_class``; the
oracle lets them through unchanged, so a registered code shows up as the global it is registered for.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import resource
from collections.abc import Iterator
from dataclasses import dataclass, field


class Stub:
    """An inert object: calling, indexing, updating or setting state on it does nothing and returns a stub."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> Stub:
        return Stub()

    def __getattr__(self, name: str) -> Stub:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Stub()

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def __reduce__(self) -> tuple[type, tuple[()]]:  # pragma: no cover - never pickled
        return (Stub, ())


def _stub_class(module: str, name: str) -> type:
    # A fresh class per global: NEWOBJ calls cls.__new__(cls, *args), which needs a real class.
    return type(f"Stub[{module}.{name}]", (Stub,), {})


@dataclass
class OracleResult:
    globals: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None  # None: the load reached STOP
    end: int | None = None  # offset after STOP when it did


def _recording(base: type) -> type:
    class Recording(base):  # type: ignore[valid-type,misc]
        def __init__(self, file: io.BytesIO, seen: list[tuple[str, str]], persistent: bool) -> None:
            super().__init__(file, encoding="ASCII")
            self._seen = seen
            if persistent:
                self.persistent_load = lambda pid: Stub()

        def find_class(self, module: str, name: str) -> type:
            self._seen.append((module, name))
            return _stub_class(module, name)

    return Recording


# The pure-Python reference unpickler and the C one ``pickle.load`` really uses: they differ at the edges (the C
# INT opcode parses with strtol, so "012" is octal 10 there and an error in Python), and the scanner must see what
# either would resolve.
PURE = _recording(pickle._Unpickler)  # type: ignore[attr-defined]
NATIVE = _recording(pickle.Unpickler)


@contextlib.contextmanager
def _memory_cap(headroom: int = 1 << 30) -> Iterator[None]:
    """Cap the address space while CPython unpickles: both unpicklers allocate a counted argument (BINBYTES8,
    BYTEARRAY8...) at its declared size before reading it, so one fuzzed length would take gigabytes of a shared
    machine. Over the cap the allocation fails with MemoryError, which is an outcome like any other."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        size = int(fh.read().split()[0]) * resource.getpagesize()
    cap = size + headroom
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def record(data: bytes, *, start: int = 0, persistent: bool = False, unpickler: type = PURE) -> OracleResult:
    """Load the one pickle at ``start`` the way ``pickle.load`` would, recording every global it resolves."""
    result = OracleResult()
    buffer = io.BytesIO(data)
    buffer.seek(start)
    unpickler = unpickler(buffer, result.globals, persistent)
    try:
        with _memory_cap():
            unpickler.load()
    except RecursionError:
        result.error = "RecursionError"
    except Exception as exc:  # noqa: BLE001 - any failure of the load is an outcome, not a test error
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    else:
        result.end = buffer.tell()
    return result
