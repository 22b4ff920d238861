"""An allow-list pickle emulator: runs the opcode stream on symbolic values, never on Python objects.

Why an emulator and not ``pickletools.genops``: STACK_GLOBAL takes its operands from the stack, which GET/PUT/MEMOIZE,
BUILD and DUP can shuffle; a scanner that guesses ("the previous op's argument", picklescan) is bypassed by memo tricks
(picklescan#14, #22, modelscan#85). Here the stack and the memo hold symbolic values with real CPython semantics
(``Modules/_pickle.c``), so every ``find_class`` call is seen with exactly the operands the loader would use.

What it reports (reference ml-artifacts.md §3, §8):

* every global (GLOBAL, INST, STACK_GLOBAL, EXT*) with its opcode offset, classified by :mod:`pickle_profiles`;
* structural anomalies: parse errors, unresolvable STACK_GLOBAL operands, GET before PUT, a non-first PROTO, FRAME
  straddles, data left on the stack at STOP, trailing bytes. After a non-allow-listed global any anomaly is
  malicious (the loader has already called it); otherwise it is unscannable;
* mutation of a global (BUILD/SETITEM/APPEND whose target is a class, function or module: ``setattr`` on
  ``torch.optim.SGD``) and calls of computed callables;
* nested payloads: bytes constants that are pickles themselves, and str/bytes arguments of ``loads``-like globals.

Limits (fickling's ``InterpreterLimits``): opcodes, stack depth, memo size, GET/PUT expansion ratio, nesting depth,
wall time. A limit is never a silent pass: it becomes an ``UNSCANNABLE`` issue (or malicious, after a bad global).

Large byte arguments are skipped by offset arithmetic, never copied; only the first bytes are looked at to decide
whether they are nested pickles.
"""

from __future__ import annotations

import codecs
import copyreg
import time
from struct import unpack_from as _unpack_from
from collections.abc import Callable
from dataclasses import dataclass

from gatekeeper.detectors import pickle_text
from gatekeeper.detectors.pickle_profiles import LOADS_LIKE
from gatekeeper.detectors.pickle_profiles import Classification
from gatekeeper.detectors.pickle_profiles import classify_global
from gatekeeper.detectors.pickle_profiles import profile_globals
from gatekeeper.model import Verdict

__all__ = ["GlobalRef", "Issue", "Limits", "PickleReport", "analyse_pickle", "analyse_one", "looks_like_pickle"]

Buffer = bytes | memoryview
NestedScan = Callable[[memoryview, str, int], "list[Issue]"]


@dataclass(frozen=True)
class Limits:
    """Resource caps; defaults follow fickling's ``InterpreterLimits`` (reference §3.1)."""

    max_opcodes: int = 1_000_000
    max_stack: int = 10_000
    max_memo: int = 100_000
    max_get_ratio: int = 50
    max_depth: int = 4
    deadline: float = float("inf")  # time.monotonic() value after which the scan gives up


@dataclass(frozen=True)
class GlobalRef:
    """A global the loader would import: ``module``/``name`` exactly as ``find_class`` receives them."""

    module: str
    name: str
    offset: int
    opcode: str
    classification: Classification
    reason: str

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Issue:
    """One reason for a verdict, with the byte offset of the opcode that caused it."""

    verdict: Verdict
    message: str
    offset: int


@dataclass(frozen=True)
class PickleReport:
    """What :func:`analyse_pickle` learned about one byte stream (one or more concatenated pickles)."""

    globals: tuple[GlobalRef, ...]
    issues: tuple[Issue, ...]
    end: int  # offset just after the last STOP that was reached (0 if none)
    pickles: int  # complete pickles parsed
    opcodes: int
    calls: int  # REDUCE/NEWOBJ/OBJ/INST executed
    complete: bool  # parsed to the end of the data without an error

    @property
    def verdict(self) -> Verdict | None:
        order = (Verdict.MALICIOUS, Verdict.UNSCANNABLE, Verdict.REVIEW)
        for verdict in order:
            if any(issue.verdict is verdict for issue in self.issues):
                return verdict
        return None


class _ParseError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class _LimitError(_ParseError):
    pass


# ----------------------------------------------------------------------------------------------- symbolic values


class _Mark:
    __slots__ = ()


_MARK = _Mark()


# Symbolic values: plain __slots__ classes (created per opcode, so cheaper than dataclasses to build and to import).
class _Global:
    """A class, function or module the loader imported."""

    __slots__ = ("ref",)

    def __init__(self, ref: GlobalRef) -> None:
        self.ref = ref


class _Const:
    """A str, bytes, int, float, bool or None constant; large bytes/str arguments are a :class:`_Span`."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


class _Span:
    """A byte range of the input that was skipped, not copied."""

    __slots__ = ("start", "length")

    def __init__(self, start: int, length: int) -> None:
        self.start = start
        self.length = length


class _Seq:
    """A tuple, list, dict, set or frozenset (contents kept up to a small bound)."""

    __slots__ = ("kind", "items")

    def __init__(self, kind: str, items: list[object] | None = None) -> None:
        self.kind = kind
        self.items: list[object] = [] if items is None else items


class _Obj:
    """The result of calling something (REDUCE, NEWOBJ, OBJ, INST) or of a persistent/extension load."""

    __slots__ = ("origin", "offset", "state", "args")

    def __init__(self, origin: object, offset: int, state: object = None, args: object = None) -> None:
        self.origin = origin
        self.offset = offset
        self.state = state
        self.args = args


# ----------------------------------------------------------------------------------------------- opcode tables

_OPNAMES = {
    b"(": "MARK", b".": "STOP", b"0": "POP", b"1": "POP_MARK", b"2": "DUP", b"F": "FLOAT", b"I": "INT",
    b"J": "BININT", b"K": "BININT1", b"L": "LONG", b"M": "BININT2", b"N": "NONE", b"P": "PERSID", b"Q": "BINPERSID",
    b"R": "REDUCE", b"S": "STRING", b"T": "BINSTRING", b"U": "SHORT_BINSTRING", b"V": "UNICODE", b"X": "BINUNICODE",
    b"a": "APPEND", b"b": "BUILD", b"c": "GLOBAL", b"d": "DICT", b"}": "EMPTY_DICT", b"e": "APPENDS", b"g": "GET",
    b"h": "BINGET", b"i": "INST", b"j": "LONG_BINGET", b"l": "LIST", b"]": "EMPTY_LIST", b"o": "OBJ", b"p": "PUT",
    b"q": "BINPUT", b"r": "LONG_BINPUT", b"s": "SETITEM", b"t": "TUPLE", b")": "EMPTY_TUPLE", b"u": "SETITEMS",
    b"G": "BINFLOAT", b"\x80": "PROTO", b"\x81": "NEWOBJ", b"\x82": "EXT1", b"\x83": "EXT2", b"\x84": "EXT4",
    b"\x85": "TUPLE1", b"\x86": "TUPLE2", b"\x87": "TUPLE3", b"\x88": "NEWTRUE", b"\x89": "NEWFALSE",
    b"\x8a": "LONG1", b"\x8b": "LONG4", b"B": "BINBYTES", b"C": "SHORT_BINBYTES", b"\x8c": "SHORT_BINUNICODE",
    b"\x8d": "BINUNICODE8", b"\x8e": "BINBYTES8", b"\x8f": "EMPTY_SET", b"\x90": "ADDITEMS", b"\x91": "FROZENSET",
    b"\x92": "NEWOBJ_EX", b"\x93": "STACK_GLOBAL", b"\x94": "MEMOIZE", b"\x95": "FRAME", b"\x96": "BYTEARRAY8",
    b"\x97": "NEXT_BUFFER", b"\x98": "READONLY_BUFFER",
}
OPNAMES: dict[int, str] = {k[0]: v for k, v in _OPNAMES.items()}

_GLOBAL_OPS = {"GLOBAL", "INST", "STACK_GLOBAL"}
_NESTED_PREVIEW = 16  # bytes looked at to decide whether a bytes constant is a nested pickle or zip
_SMALL_CONST = 1 << 16  # byte/str constants up to this size are materialised (STACK_GLOBAL operands, loads args)


_MAX_LINE = 1 << 20  # protocol 0 text arguments longer than this are a resource limit (CPython has none)


def find_byte(data: memoryview, needle: bytes, start: int, limit: int) -> int:
    """Index of ``needle`` (one byte) in ``data[start:start + limit + 1]``, or -1; looks in growing windows, so a
    long search over an mmap never copies more than it has to."""
    window = 256
    pos = start
    size = min(len(data), start + limit + 1)
    while pos < size:
        end = min(size, pos + window)
        idx = bytes(data[pos:end]).find(needle)
        if idx >= 0:
            return pos + idx
        pos = end
        window = min(window * 4, 1 << 24)
    return -1


def looks_like_pickle(head: bytes) -> bool:
    """The cheap sniff: a protocol 2-5 PROTO opcode at offset 0."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


class _Machine:
    """One run over one pickle (up to its STOP)."""

    def __init__(
        self,
        data: memoryview,
        start: int,
        *,
        allowed: frozenset[str],
        torch_context: bool,
        limits: Limits,
        depth: int,
        nested: NestedScan | None,
        profile: str,
        extra_globals: frozenset[str],
        joblib: bool,
        persistent_load: bool = True,
    ) -> None:
        self.persistent_load = persistent_load
        self.data = data
        self.size = len(data)
        self.pos = start
        self.start = start
        self.allowed = allowed
        self.torch_context = torch_context
        self.limits = limits
        self.depth = depth
        self.nested = nested
        self.profile = profile
        self.extra_globals = extra_globals
        self.joblib = joblib
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: dict[int, object] = {}
        self.globals: list[GlobalRef] = []
        self.issues: list[Issue] = []
        self.opcodes = 0
        self.calls = 0
        self.gets = 0
        self.puts = 0
        self.frame_end = -1
        self.c_buffer_end = -1  # end of the C unpickler's read buffer (the last frame it fetched)
        self.proto_seen = False
        self.bad_global = False

    # -- reading ------------------------------------------------------------------------------------------------
    def _read(self, n: int, op_offset: int, *, raw: bool = False) -> bytes:
        end = self.pos + n
        if n < 0 or end > self.size:
            raise _ParseError(f"truncated: {n} bytes needed, {self.size - self.pos} left", op_offset)
        self._check_frame(end, self.pos if raw else op_offset)
        chunk = bytes(self.data[self.pos:end])
        self.pos = end
        return chunk

    def _skip(self, n: int, op_offset: int, *, raw: bool = False) -> _Span:
        end = self.pos + n
        if n < 0 or end > self.size:
            raise _ParseError(f"truncated: {n} bytes needed, {self.size - self.pos} left", op_offset)
        self._check_frame(end, self.pos if raw else op_offset)
        span = _Span(self.pos, n)
        self.pos = end
        return span

    def _check_frame(self, end: int, start: int) -> None:
        # CPython's C unpickler reads linearly across frame ends, the pure-Python one raises "pickle exhausted before
        # end of frame": an argument that straddles a FRAME boundary is produced by no pickler (cpython#154848).
        # ``start`` is the opcode's offset for arguments (opcode and argument share a frame), the read position for
        # raw reads outside the opcode stream (joblib arrays are written after the pickler commits its frame).
        if self.frame_end >= 0:
            if start < self.frame_end < end:
                self._anomaly("opcode argument straddles a FRAME boundary", start)
            if self.pos >= self.frame_end:
                self.frame_end = -1

    def _readline(self, op_offset: int, *, at_eof: bool = False) -> bytes:
        """The next line *with* its newline, as ``readline`` returns it (CPython reads lines of any length).

        Without a newline before the end of the data: a parse error, or with ``at_eof`` the rest of the data, as the
        pure-Python unpickler's ``readline`` returns it (it then drops the last character and still calls
        ``find_class`` for GLOBAL/INST: ``(itorch`` at the end of a file imports ``torch``).
        """
        idx = find_byte(self.data, b"\n", self.pos, _MAX_LINE)
        if idx < 0 and self.size - self.pos > _MAX_LINE:
            if at_eof and b"\0" in bytes(self.data[self.pos:self.pos + _MAX_LINE]):
                # A module name with a NUL byte cannot be imported: every loader fails here, nothing resolved.
                raise _ParseError(f"GLOBAL operand over {_MAX_LINE} bytes with a NUL byte", op_offset)
            raise _LimitError(f"text argument longer than {_MAX_LINE} bytes", op_offset)
        if idx < 0:
            if not at_eof:
                raise _ParseError("unterminated text argument", op_offset)
            idx = self.size - 1
        return self._read(idx + 1 - self.pos, op_offset)

    def _fixed(self, n: int, offset: int) -> int:
        """Claim the ``n``-byte argument of the opcode at ``offset``; returns where it starts (hot path: no copy)."""
        end = offset + 1 + n
        if end > self.size:
            raise _ParseError(f"truncated: {n} bytes needed, {self.size - offset - 1} left", offset)
        if offset < self.frame_end < end:
            self._anomaly("opcode argument straddles a FRAME boundary", offset)
        self.pos = end
        return offset + 1

    def _uint(self, n: int, op_offset: int) -> int:
        return int.from_bytes(self._read(n, op_offset), "little")

    # -- bookkeeping --------------------------------------------------------------------------------------------
    def _issue(self, verdict: Verdict, message: str, offset: int) -> None:
        self.issues.append(Issue(verdict, message, offset))

    def _anomaly(self, message: str, offset: int) -> None:
        if self.bad_global:
            self._issue(Verdict.MALICIOUS, f"structural anomaly after a non-allow-listed global: {message}", offset)
        else:
            self._issue(Verdict.UNSCANNABLE, f"structural anomaly: {message}", offset)

    def _pop(self, offset: int) -> object:
        if not self.stack:
            raise _ParseError("stack underflow", offset)
        return self.stack.pop()

    def _pop_mark(self, offset: int) -> list[object]:
        if not self.metastack:
            raise _ParseError("MARK expected", offset)
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def _add_global(self, module: str, name: str, offset: int, opcode: str) -> _Global:
        classification, reason = classify_global(module, name, self.allowed)
        return self._record_global(GlobalRef(module, name, offset, opcode, classification, reason))

    def _record_global(self, ref: GlobalRef) -> _Global:
        classification = ref.classification
        reason = ref.reason
        offset = ref.offset
        self.globals.append(ref)
        if classification is Classification.DENY:
            self.bad_global = True
            self._issue(Verdict.MALICIOUS, f"global {ref.dotted} ({reason})", offset)
        elif classification is Classification.REVIEW:
            self.bad_global = True
            self._issue(Verdict.REVIEW, f"global {ref.dotted} ({reason})", offset)
        return _Global(ref)

    def _check_mutation(self, target: object, what: str, offset: int) -> None:
        if isinstance(target, _Global):
            # setattr/__setitem__ on a class, function or module: the sabotage shape (patching torch.optim.SGD.step,
            # or redirecting torch._utils._rebuild_tensor to builtins.eval before looking it up again).
            self.bad_global = True
            self._issue(Verdict.MALICIOUS, f"{what} mutates global {target.ref.dotted}", offset)

    def _scan_nested_bytes(self, value: object, offset: int, why: str) -> None:
        if self.depth >= self.limits.max_depth:
            self._issue(Verdict.UNSCANNABLE, f"nesting deeper than {self.limits.max_depth} ({why})", offset)
            return
        if isinstance(value, _Span):
            start, length = value.start, value.length
            view = self.data[start:start + length]
        elif isinstance(value, bytes | str):
            raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
            start, length, view = offset, len(raw), memoryview(raw)
        else:
            return
        if length < 2:
            return
        head = bytes(view[:_NESTED_PREVIEW])
        if looks_like_pickle(head) or why.startswith("argument of"):
            sub = analyse_pickle(
                view, profile=self.profile, extra_globals=self.extra_globals, limits=self.limits,
                depth=self.depth + 1, nested=self.nested, torch_context=self.torch_context,
            )
            if not (sub.globals or sub.calls) and not why.startswith("argument of"):
                return  # bytes that only start like a pickle (tensor data): nothing the loader would run
            for issue in sub.issues:
                verdict = Verdict.MALICIOUS if issue.verdict is Verdict.REVIEW else issue.verdict
                self._issue(verdict, f"nested pickle ({why}) at offset {issue.offset}: {issue.message}", offset)
            if sub.globals and not sub.issues and why.startswith("argument of"):
                self._issue(Verdict.MALICIOUS, f"nested pickle ({why})", offset)
        elif head.startswith(b"PK\x03\x04") and self.nested is not None:
            for issue in self.nested(view, why, self.depth + 1):
                self._issue(issue.verdict, f"nested archive ({why}): {issue.message}", offset)

    def _scan_encoded(self, raw: bytes, offset: int) -> None:
        """A str or bytes constant that is an encoded pickle, zip or compressed stream: decode it and scan it.

        Nothing in the pickle has to call a decoder: a checkpoint can carry ``base64(zlib(pickle))`` as plain data
        for code that decodes and loads it later (the decode-then-load chain lives outside the file).
        """
        decoded = _decode_constant(raw)
        if decoded is None and max(raw[:4]) >= 0x80:
            try:  # a str carrying binary the latin-1 way (what ``s.encode("latin-1")`` gives back)
                decoded = _decode_constant(raw.decode("utf-8").encode("latin-1"))
            except (UnicodeDecodeError, UnicodeEncodeError):
                decoded = None
        if decoded is not None:
            self._scan_nested_bytes(decoded, offset, "encoded payload in a constant")

    # -- main loop ----------------------------------------------------------------------------------------------
    def run(self) -> int:
        """Execute opcodes up to STOP; returns the offset after STOP. Raises _ParseError.

        The loop only fetches, counts and checks limits; every opcode is one ``op_*`` method, found through a
        256-entry table (``_DISPATCH``), so each opcode's semantics can be read and reviewed on its own.
        """
        data = self.data
        size = self.size
        limits = self.limits
        max_opcodes = limits.max_opcodes
        max_stack = limits.max_stack
        table = _DISPATCH
        while True:
            offset = self.pos
            if offset >= size:
                raise _ParseError("pickle ends without STOP", offset)
            if 0 <= self.frame_end <= offset:
                self.frame_end = -1
            code = data[offset]
            self.opcodes = count = self.opcodes + 1
            if count > max_opcodes:
                raise _LimitError(f"more than {max_opcodes} opcodes", offset)
            if not count & 0xFFF:
                if time.monotonic() > limits.deadline:
                    raise _LimitError("time budget exhausted", offset)
                if len(self.stack) + len(self.metastack) > max_stack:
                    raise _LimitError(f"stack depth over {max_stack}", offset)
            handler = table[code]
            if handler is None:
                raise _ParseError(f"unknown opcode 0x{code:02x}", offset)
            self.pos = offset + 1
            if handler(self, offset) is True:
                return self.pos

    # -- opcodes: structure -------------------------------------------------------------------------------------
    def op_PROTO(self, offset: int) -> None:
        proto = self._uint(1, offset)
        if proto > 5:
            raise _ParseError(f"unsupported pickle protocol {proto}", offset)
        if offset != self.start or self.proto_seen:
            self._anomaly("PROTO that is not the first opcode", offset)
        self.proto_seen = True

    def op_FRAME(self, offset: int) -> None:
        length = self._uint(8, offset)
        if self.pos + length > self.size:
            # The C unpickler fails here; the pure-Python one reads what there is and runs the opcodes in it.
            self._anomaly(f"FRAME of {length} bytes runs past the end of the data", offset)
            length = self.size - self.pos
        if self.frame_end >= 0 and self.pos < self.frame_end:
            self._anomaly("FRAME inside a frame", offset)
        self.frame_end = self.pos + length
        # The C unpickler buffers a frame only when it does not fit in what it already holds (a FRAME inside a
        # frame that fits changes nothing there): where its buffer ends is where a straddling line is re-read.
        if self.pos + length > self.c_buffer_end:
            self.c_buffer_end = self.pos + length

    def op_STOP(self, offset: int) -> bool:
        self._pop(offset)
        if self.stack or self.metastack:
            self._anomaly(f"{len(self.stack) + len(self.metastack)} values left on the stack at STOP", offset)
        return True

    def op_MARK(self, offset: int) -> None:
        self.metastack.append(self.stack)
        self.stack = []
        if len(self.stack) + len(self.metastack) > self.limits.max_stack:
            raise _LimitError(f"stack depth over {self.limits.max_stack}", offset)

    def op_POP(self, offset: int) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self._pop_mark(offset)  # CPython's load_pop pops a mark when the stack is empty

    def op_POP_MARK(self, offset: int) -> None:
        self._pop_mark(offset)

    def op_DUP(self, offset: int) -> None:
        if not self.stack:
            raise _ParseError("DUP on an empty stack", offset)
        self.stack.append(self.stack[-1])

    # -- constants ----------------------------------------------------------------------------------------------
    def _const(self, value: object, offset: int) -> None:
        self.stack.append(_Const(value))

    def op_NONE(self, offset: int) -> None:
        self._const(None, offset)

    def op_NEWTRUE(self, offset: int) -> None:
        self._const(True, offset)

    def op_NEWFALSE(self, offset: int) -> None:
        self._const(False, offset)

    def _text_number(self, parse: Callable[[bytes], object], what: str, offset: int) -> None:
        line = self._readline(offset)
        try:
            self._const(parse(line), offset)
        except (ValueError, OverflowError):
            raise _ParseError(f"invalid {what} literal", offset) from None

    def op_INT(self, offset: int) -> None:
        self._text_number(pickle_text.parse_int, "INT", offset)

    def op_LONG(self, offset: int) -> None:
        self._text_number(pickle_text.parse_long, "LONG", offset)

    def op_FLOAT(self, offset: int) -> None:
        self._text_number(pickle_text.parse_float, "FLOAT", offset)

    def op_BININT(self, offset: int) -> None:
        self.stack.append(_Const(_unpack_from("<i", self.data, self._fixed(4, offset))[0]))

    def op_BININT1(self, offset: int) -> None:
        self.stack.append(_Const(self.data[self._fixed(1, offset)]))

    def op_BININT2(self, offset: int) -> None:
        self._const(self._uint(2, offset), offset)

    def op_BINFLOAT(self, offset: int) -> None:
        self.stack.append(_Const(_unpack_from(">d", self.data, self._fixed(8, offset))[0]))

    def _long(self, nbytes: int, offset: int) -> None:
        n = self._uint(nbytes, offset)
        if nbytes == 4 and n > (1 << 31) - 1:
            raise _ParseError("LONG4 byte count is negative", offset)
        if n > _SMALL_CONST:
            self._skip(n, offset)
            self._const(0, offset)
        else:
            self._const(int.from_bytes(self._read(n, offset), "little", signed=True), offset)

    def op_LONG1(self, offset: int) -> None:
        self._long(1, offset)

    def op_LONG4(self, offset: int) -> None:
        self._long(4, offset)

    def op_STRING(self, offset: int) -> None:
        line = self._readline(offset)[:-1]
        if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
            line = line[1:-1]
        else:
            raise _ParseError("the STRING opcode argument must be quoted", offset)
        try:
            raw = codecs.escape_decode(line)[0]
        except ValueError:
            raise _ParseError("invalid escape in STRING", offset) from None
        # pickle.loads decodes protocol 0-2 str8 as ASCII by default (encoding="ASCII"), so these become str and can
        # feed STACK_GLOBAL (GHSA-9gvj-pp9x-gcfr).
        self._const(raw.decode("latin-1"), offset)

    def _bytes_arg(self, nbytes: int, offset: int, *, text: bool, str8: bool = False) -> None:
        n = self._uint(nbytes, offset)
        if nbytes == 4 and str8 and n > (1 << 31) - 1:
            raise _ParseError("BINSTRING length is negative", offset)
        if n > _SMALL_CONST:
            span = self._skip(n, offset)
            self._const(span, offset)
            if not text:
                self._scan_nested_bytes(span, offset, "bytes constant")
            return
        raw = self._read(n, offset)
        if n >= 24 and raw[:2] in _ENCODED_HEADS:
            self._scan_encoded(raw, offset)
        if text:
            try:
                self._const(raw.decode("utf-8", "surrogatepass"), offset)
            except UnicodeDecodeError:
                raise _ParseError("invalid UTF-8 in a unicode argument", offset) from None
        elif str8:
            self._const(raw.decode("latin-1"), offset)
        else:
            self._const(raw, offset)
            if looks_like_pickle(raw[:2]) or raw.startswith(b"PK\x03\x04"):
                self._scan_nested_bytes(raw, offset, "bytes constant")

    def op_BINSTRING(self, offset: int) -> None:
        self._bytes_arg(4, offset, text=False, str8=True)

    def op_SHORT_BINSTRING(self, offset: int) -> None:
        self._bytes_arg(1, offset, text=False, str8=True)

    def op_BINBYTES(self, offset: int) -> None:
        self._bytes_arg(4, offset, text=False)

    def op_SHORT_BINBYTES(self, offset: int) -> None:
        self._bytes_arg(1, offset, text=False)

    def op_BINBYTES8(self, offset: int) -> None:
        self._bytes_arg(8, offset, text=False)

    def op_BYTEARRAY8(self, offset: int) -> None:
        self._bytes_arg(8, offset, text=False)

    def op_BINUNICODE(self, offset: int) -> None:
        self._bytes_arg(4, offset, text=True)

    def op_SHORT_BINUNICODE(self, offset: int) -> None:
        # the commonest opcode of real checkpoints (dict keys, STACK_GLOBAL operands): read in place
        start = self._fixed(1, offset) + 1
        end = start + self.data[start - 1]
        if end > self.size:
            raise _ParseError(f"truncated: {end - start} bytes needed, {self.size - start} left", offset)
        if offset < self.frame_end < end:
            self._anomaly("opcode argument straddles a FRAME boundary", offset)
        raw = bytes(self.data[start:end])
        try:
            self.stack.append(_Const(raw.decode("utf-8", "surrogatepass")))
        except UnicodeDecodeError:
            raise _ParseError("invalid UTF-8 in a unicode argument", offset) from None
        if end - start >= 24 and raw[:2] in _ENCODED_HEADS:
            self._scan_encoded(raw, offset)
        self.pos = end

    def op_BINUNICODE8(self, offset: int) -> None:
        self._bytes_arg(8, offset, text=True)

    def op_UNICODE(self, offset: int) -> None:
        line = self._readline(offset)[:-1]
        try:
            self._const(line.decode("raw-unicode-escape"), offset)
        except UnicodeDecodeError:
            raise _ParseError("invalid raw-unicode-escape in UNICODE", offset) from None

    def op_NEXT_BUFFER(self, offset: int) -> None:
        self.stack.append(_Obj("out-of-band buffer", offset))

    def op_READONLY_BUFFER(self, offset: int) -> None:
        if not self.stack:
            raise _ParseError("READONLY_BUFFER on an empty stack", offset)

    # -- containers ---------------------------------------------------------------------------------------------
    def op_EMPTY_TUPLE(self, offset: int) -> None:
        self.stack.append(_Seq("tuple"))

    def op_TUPLE(self, offset: int) -> None:
        items = self._pop_mark(offset)  # pops the mark first: it replaces self.stack
        self.stack.append(_Seq("tuple", items))

    def _tuple_n(self, n: int, offset: int) -> None:
        stack = self.stack
        if len(stack) < n:
            raise _ParseError("stack underflow", offset)
        items = stack[-n:]
        del stack[-n:]
        stack.append(_Seq("tuple", items))

    def op_TUPLE1(self, offset: int) -> None:
        self._tuple_n(1, offset)

    def op_TUPLE2(self, offset: int) -> None:
        self._tuple_n(2, offset)

    def op_TUPLE3(self, offset: int) -> None:
        self._tuple_n(3, offset)

    def op_EMPTY_LIST(self, offset: int) -> None:
        self.stack.append(_Seq("list"))

    def op_LIST(self, offset: int) -> None:
        items = self._pop_mark(offset)  # pops the mark first: it replaces self.stack
        self.stack.append(_Seq("list", items))

    def op_EMPTY_DICT(self, offset: int) -> None:
        self.stack.append(_Seq("dict"))

    def op_DICT(self, offset: int) -> None:
        items = self._pop_mark(offset)
        if len(items) % 2:
            raise _ParseError("odd number of items for DICT", offset)
        self.stack.append(_Seq("dict", items))

    def op_EMPTY_SET(self, offset: int) -> None:
        self.stack.append(_Seq("set"))

    def op_FROZENSET(self, offset: int) -> None:
        items = self._pop_mark(offset)  # pops the mark first: it replaces self.stack
        self.stack.append(_Seq("frozenset", items))

    def _extend(self, target: object, items: list[object], what: str, offset: int) -> None:
        if not items:
            return  # the C unpickler returns before it looks at the target (any type) when there is nothing to add
        self._check_mutation(target, what, offset)
        if isinstance(target, _Seq):
            if len(target.items) < 64:  # enough to see small argument tuples; big containers need no contents
                target.items.extend(items[: 64 - len(target.items)])
        elif isinstance(target, _Const):
            raise _ParseError(f"{what} on a constant", offset)

    def op_APPEND(self, offset: int) -> None:
        value = self._pop(offset)
        if not self.stack:
            raise _ParseError("APPEND without a list", offset)
        self._extend(self.stack[-1], [value], "APPEND", offset)

    def op_APPENDS(self, offset: int) -> None:
        items = self._pop_mark(offset)
        if not self.stack:
            raise _ParseError("APPENDS without a list", offset)
        self._extend(self.stack[-1], items, "APPENDS", offset)

    def op_SETITEM(self, offset: int) -> None:
        value = self._pop(offset)
        key = self._pop(offset)
        if not self.stack:
            raise _ParseError("SETITEM without a dict", offset)
        self._extend(self.stack[-1], [key, value], "SETITEM", offset)

    def op_SETITEMS(self, offset: int) -> None:
        items = self._pop_mark(offset)
        if len(items) % 2:
            raise _ParseError("odd number of items for SETITEMS", offset)
        if not self.stack:
            raise _ParseError("SETITEMS without a dict", offset)
        self._extend(self.stack[-1], items, "SETITEMS", offset)

    def op_ADDITEMS(self, offset: int) -> None:
        items = self._pop_mark(offset)
        if not self.stack:
            raise _ParseError("ADDITEMS without a set", offset)
        self._extend(self.stack[-1], items, "ADDITEMS", offset)

    # -- memo ---------------------------------------------------------------------------------------------------
    def _memo_get(self, key: int, offset: int) -> None:
        self.gets += 1
        if key not in self.memo:
            raise _ParseError(f"GET of memo key {key} that was never stored (GET before PUT)", offset)
        if self.gets > 10_000 and self.gets > self.limits.max_get_ratio * max(self.puts, 1):
            raise _LimitError(f"memo GET/PUT ratio over {self.limits.max_get_ratio} (expansion attack)", offset)
        self.stack.append(self.memo[key])

    def _memo_put(self, key: int, offset: int) -> None:
        if not self.stack:
            raise _ParseError("PUT on an empty stack", offset)
        if key < 0:
            raise _ParseError("negative memo key", offset)
        self.puts += 1
        self.memo[key] = self.stack[-1]
        if len(self.memo) > self.limits.max_memo:
            raise _LimitError(f"memo larger than {self.limits.max_memo}", offset)

    def _text_key(self, offset: int) -> int:
        line = self._readline(offset)
        try:
            return pickle_text.parse_memo_key(line)
        except ValueError:
            raise _ParseError("invalid memo key", offset) from None

    def op_GET(self, offset: int) -> None:
        self._memo_get(self._text_key(offset), offset)

    def op_BINGET(self, offset: int) -> None:
        self._memo_get(self.data[self._fixed(1, offset)], offset)

    def op_LONG_BINGET(self, offset: int) -> None:
        self._memo_get(self._uint(4, offset), offset)

    def op_PUT(self, offset: int) -> None:
        self._memo_put(self._text_key(offset), offset)

    def op_BINPUT(self, offset: int) -> None:
        self._memo_put(self.data[self._fixed(1, offset)], offset)

    def op_LONG_BINPUT(self, offset: int) -> None:
        self._memo_put(_unpack_from("<I", self.data, self._fixed(4, offset))[0], offset)

    def op_MEMOIZE(self, offset: int) -> None:
        self._memo_put(len(self.memo), offset)

    # -- globals ------------------------------------------------------------------------------------------------
    def _text_line(self, offset: int) -> tuple[bytes, bytes | None]:
        """A GLOBAL/INST operand line, and how the C unpickler reading a file reads it when it straddles a FRAME end.

        The C unpickler holds exactly the frame in its buffer; a line that runs past the frame end is read again from
        the file, and the buffered part is dropped (``_Unpickler_ReadFromFile`` replaces the buffer). The straddle is
        an anomaly of its own; the second reading is returned so that its global is reported too.
        """
        buffer_end = self.c_buffer_end
        start = self.pos
        line = self._readline(offset, at_eof=True)
        if start < buffer_end < self.pos:
            return line[:-1], bytes(self.data[buffer_end:self.pos - 1])
        return line[:-1], None

    def _text_global(self, offset: int, opcode: str) -> _Global:
        module, c_module = self._text_line(offset)
        name, c_name = self._text_line(offset)
        try:
            # CPython's load_global decodes both lines as UTF-8 (load_inst as ASCII: UTF-8 is the wider reading).
            if c_module is not None or c_name is not None:
                other_module = (module if c_module is None else c_module).decode("utf-8", "replace")
                other_name = (name if c_name is None else c_name).decode("utf-8", "replace")
                self._add_global(other_module, other_name, offset, opcode)
            return self._add_global(module.decode("utf-8"), name.decode("utf-8"), offset, opcode)
        except UnicodeDecodeError:
            raise _ParseError(f"{opcode} operands are not UTF-8", offset) from None

    def op_GLOBAL(self, offset: int) -> None:
        self.stack.append(self._text_global(offset, "GLOBAL"))

    def op_STACK_GLOBAL(self, offset: int) -> None:
        name = self._pop(offset)
        module = self._pop(offset)
        if not (isinstance(module, _Const) and isinstance(name, _Const)
                and isinstance(module.value, str) and isinstance(name.value, str)):
            # The loader raises UnpicklingError("STACK_GLOBAL requires str") for anything but str; an operand the
            # emulator cannot resolve to a string means its value comes from a call or a mutation: malicious (§3.3).
            self.bad_global = True
            self._issue(Verdict.MALICIOUS, "STACK_GLOBAL with operands that are not plain strings "
                        f"({_describe(module)}, {_describe(name)})", offset)
            self.stack.append(_Obj("unresolved global", offset))
            return
        self.stack.append(self._add_global(module.value, name.value, offset, "STACK_GLOBAL"))

    def _ext(self, nbytes: int, offset: int) -> None:
        code = self._uint(nbytes, offset)
        opcode = f"EXT{nbytes}"
        # CPython resolves an extension code through copyreg's registry and then calls find_class on what it finds:
        # a registered code is that global. The registry is empty in a fresh interpreter (registering is
        # copyreg.add_extension, deny-listed); what the loading process registered cannot be seen from here, so an
        # unregistered code is refused: it fails in a plain interpreter and means something else where registered.
        key = copyreg._inverted_registry.get(code)  # type: ignore[attr-defined]  # private, not in typeshed
        if key is not None:
            self.stack.append(self._add_global(key[0], key[1], offset, opcode))
            return
        self.bad_global = True
        self._issue(Verdict.UNSCANNABLE, f"{opcode} extension code {code} is not registered (copyreg): it fails in a "
                    "plain interpreter and resolves to whatever the loading process registered", offset)
        self.stack.append(_Obj(f"extension {code}", offset))

    def op_EXT1(self, offset: int) -> None:
        self._ext(1, offset)

    def op_EXT2(self, offset: int) -> None:
        self._ext(2, offset)

    def op_EXT4(self, offset: int) -> None:
        self._ext(4, offset)

    # -- calls --------------------------------------------------------------------------------------------------
    def _call(self, func: object, args: object, offset: int, what: str) -> None:
        self.calls += 1
        if isinstance(func, _Global):
            dotted = func.ref.dotted
            if dotted in LOADS_LIKE or func.ref.name in ("loads", "load") and isinstance(args, _Seq):
                if isinstance(args, _Seq):
                    for arg in args.items[:2]:
                        if isinstance(arg, _Const) and isinstance(arg.value, bytes | str | _Span):
                            self._scan_nested_bytes(arg.value, offset, f"argument of {dotted}")
                        elif isinstance(arg, _Obj):
                            decoded = _decode_chain(arg, self.data, 0)
                            if decoded is not None:
                                self._scan_nested_bytes(decoded, offset, f"argument of {dotted} (decoded)")
        elif isinstance(func, _Obj | _Seq | _Const):
            self._issue(Verdict.REVIEW, f"{what} calls a computed value ({_describe(func)})", offset)
        self.stack.append(_Obj(func, offset, args=args))

    def op_REDUCE(self, offset: int) -> None:
        args = self._pop(offset)
        func = self._pop(offset)
        self._call(func, args, offset, "REDUCE")

    def op_NEWOBJ(self, offset: int) -> None:
        args = self._pop(offset)
        cls = self._pop(offset)
        self._call(cls, args, offset, "NEWOBJ")

    def op_NEWOBJ_EX(self, offset: int) -> None:
        self._pop(offset)  # kwargs
        args = self._pop(offset)
        cls = self._pop(offset)
        self._call(cls, args, offset, "NEWOBJ_EX")

    def op_OBJ(self, offset: int) -> None:
        items = self._pop_mark(offset)
        if not items:
            raise _ParseError("OBJ without a class", offset)
        self._call(items[0], _Seq("tuple", items[1:]), offset, "OBJ")

    def op_INST(self, offset: int) -> None:
        cls = self._text_global(offset, "INST")
        items = self._pop_mark(offset)
        self._call(cls, _Seq("tuple", items), offset, "INST")

    def op_BUILD(self, offset: int) -> None:
        state = self._pop(offset)
        if not self.stack:
            raise _ParseError("BUILD without an object", offset)
        target = self.stack[-1]
        self._check_mutation(target, "BUILD", offset)
        # BUILD on a constant is no error for the pure-Python unpickler when the state is falsy (it does nothing),
        # so the emulator keeps going whatever the state.
        if isinstance(target, _Obj):
            # Slot state is applied with setattr(): a dunder key can swap __class__ or reach __dict__ internals.
            parts = state.items if isinstance(state, _Seq) and state.kind == "tuple" else [state]
            for part in parts:
                dunders = [k for k in _dict_items(part) if k.startswith("__") and k.endswith("__")]
                if dunders:
                    self._issue(Verdict.REVIEW, f"BUILD sets dunder attribute {dunders[0]!r} on "
                                f"{_describe(target)}", offset)
                    break
            target.state = state
            if self.joblib and _is_joblib_wrapper(target):
                self._joblib_array(target, offset)

    def _persid(self, pid: object, offset: int, opcode: str) -> None:
        if not self.persistent_load:
            # pickle.load without a persistent_load raises UnpicklingError here, before anything else runs.
            raise _ParseError(f"{opcode} without a persistent_load (the loader fails here)", offset)
        ok = (
            self.torch_context
            and opcode == "BINPERSID"
            and isinstance(pid, _Seq)
            and pid.kind == "tuple"
            and pid.items
            and isinstance(pid.items[0], _Const)
            and pid.items[0].value == "storage"
        )
        if not ok:
            self._issue(Verdict.REVIEW, f"{opcode} persistent id {_describe(pid)} (resolved by the loader's "
                        "persistent_load)", offset)
        self.stack.append(_Obj(("persistent", pid), offset))

    def op_PERSID(self, offset: int) -> None:
        line = self._readline(offset, at_eof=True)[:-1]
        self._persid(_Const(line.decode("latin-1")), offset, "PERSID")

    def op_BINPERSID(self, offset: int) -> None:
        self._persid(self._pop(offset), offset, "BINPERSID")

    # -- joblib inline arrays -----------------------------------------------------------------------------------
    def _joblib_array(self, wrapper: _Obj, offset: int) -> None:
        """Skip the raw array bytes joblib's NumpyArrayWrapper writes right after its BUILD (reference §4)."""
        state = wrapper.state
        fields = _dict_items(state)
        shape = fields.get("shape")
        dtype = fields.get("dtype")
        if not isinstance(shape, _Seq) or not all(isinstance(x, _Const) and isinstance(x.value, int)
                                                  for x in shape.items):
            raise _ParseError("joblib array wrapper without a readable shape", offset)
        count = 1
        for dim in shape.items:
            assert isinstance(dim, _Const) and isinstance(dim.value, int)
            count *= dim.value
        descr = _dtype_descr(dtype)
        if descr is None:
            raise _ParseError("joblib array wrapper with an unreadable dtype", offset)
        if descr.lstrip("<>|=").startswith("O"):
            # Object arrays are a separate inline pickle (joblib's write_array: pickle.dump(array, protocol=2), no
            # padding), loaded with plain pickle.load; analyse it as a nested pickle.
            sub, end = analyse_one(
                self.data, self.pos, profile=self.profile, extra_globals=self.extra_globals, limits=self.limits,
                depth=self.depth + 1, nested=self.nested, torch_context=self.torch_context, joblib=False,
            )
            for issue in sub.issues:
                self._issue(issue.verdict, f"joblib object array pickle: {issue.message}", issue.offset)
            if sub.globals and any(g.classification is not Classification.ALLOW for g in sub.globals):
                self.bad_global = True
            if end is None:
                raise _ParseError("joblib object array pickle does not end", offset)
            self.pos = end
            return
        align = fields.get("numpy_array_alignment_bytes")
        if isinstance(align, _Const) and isinstance(align.value, int) and not isinstance(align.value, bool):
            # joblib >= 1.2 writes one padding-length byte, then that many 0xff bytes, before aligned arrays.
            pad = int.from_bytes(self._read(1, offset, raw=True), "little")
            self._skip(pad, offset, raw=True)
        itemsize = _itemsize(descr)
        if itemsize is None:
            raise _ParseError(f"joblib array with unsupported dtype {descr!r}", offset)
        self._skip(count * itemsize, offset, raw=True)


_DISPATCH: list[Callable[[_Machine, int], bool | None] | None] = [
    getattr(_Machine, "op_" + OPNAMES[code]) if code in OPNAMES else None for code in range(256)
]


_DECODERS = frozenset({
    "base64.b64decode", "base64.standard_b64decode", "base64.urlsafe_b64decode", "base64.b32decode",
    "base64.b16decode", "base64.a85decode", "base64.b85decode", "base64.decodebytes", "binascii.a2b_base64",
    "binascii.unhexlify", "binascii.a2b_hex", "codecs.decode", "_codecs.decode", "_codecs.encode", "codecs.encode",
    "zlib.decompress", "bz2.decompress", "lzma.decompress", "gzip.decompress", "builtins.bytes.fromhex",
})
_DECODE_CAP = 16 << 20

# First two bytes of a constant that may be an encoded payload: base64 of a PROTO 2-5 pickle ("gA"), of zlib ("eJ",
# "eN", "eF", "eA"), gzip ("H4"), zip ("UE"); hex of the same ("80", "78", "1f", "50"); raw zlib ("x\x9c" ...).
_ENCODED_HEADS = frozenset({b"gA", b"eJ", b"eN", b"eF", b"eA", b"H4", b"UE", b"80", b"78", b"1f", b"50",
                            b"x\x9c", b"x\xda", b"x\x01", b"x^", b"x\xc2", b"x\xc3",
                            b"Z0", b"ZU", b"SD", b"VU"})  # base64 of base64


def _decode_constant(raw: bytes) -> bytes | None:
    """What an encoded constant decodes to, when it is a pickle, zip or compressed pickle; else None."""
    import base64
    import binascii
    import zlib

    for _ in range(4):  # base64(zlib(hex(...))) and friends, a few layers deep
        decoded: bytes | None = None
        if raw[:1] == b"x":
            try:
                decoded = zlib.decompressobj().decompress(raw, _DECODE_CAP)
            except zlib.error:
                return None
        elif raw[:2] == b"\x1f\x8b":
            try:
                decoded = zlib.decompressobj(31).decompress(raw, _DECODE_CAP)
            except zlib.error:
                return None
        else:
            text = raw.strip()
            try:
                if len(text) % 2 == 0 and all(c in b"0123456789abcdefABCDEF" for c in text[:64]):
                    decoded = binascii.unhexlify(text)
                else:
                    decoded = base64.b64decode(text, validate=True)
            except (ValueError, binascii.Error):
                return None
        if looks_like_pickle(decoded[:2]) or decoded.startswith(b"PK\x03\x04"):
            return decoded
        if not decoded or decoded[:2] not in _ENCODED_HEADS and decoded[:2] != b"\x1f\x8b":
            return None
        raw = decoded
    return None


def _decode_chain(value: object, data: memoryview, depth: int) -> bytes | None:
    """Bytes produced by a chain of decoder calls on a constant (``loads(b64decode("..."))``), or None.

    Only pure stdlib decoders are evaluated, on bounded input; anything else is not followed (its global is already
    reported on its own).
    """
    if depth > 8:
        return None
    if isinstance(value, _Const):
        raw = value.value
        if isinstance(raw, _Span):
            return bytes(data[raw.start:raw.start + raw.length]) if raw.length <= _DECODE_CAP else None
        if isinstance(raw, str):
            return raw.encode("latin-1", "replace")
        return raw if isinstance(raw, bytes) else None
    if not (isinstance(value, _Obj) and isinstance(value.origin, _Global) and value.origin.ref.dotted in _DECODERS):
        return None
    args = value.args
    if not (isinstance(args, _Seq) and args.items):
        return None
    inner = _decode_chain(args.items[0], data, depth + 1)
    if inner is None or len(inner) > _DECODE_CAP:
        return None
    name = value.origin.ref.dotted
    codec = args.items[1].value if len(args.items) > 1 and isinstance(args.items[1], _Const) else None
    import base64
    import binascii
    import bz2
    import lzma
    import zlib

    try:
        if name.endswith(("b64decode", "decodebytes", "a2b_base64")):
            return base64.b64decode(inner)
        if name.endswith("b32decode"):
            return base64.b32decode(inner)
        if name.endswith("b16decode"):
            return base64.b16decode(inner, casefold=True)
        if name.endswith("a85decode"):
            return base64.a85decode(inner)
        if name.endswith("b85decode"):
            return base64.b85decode(inner)
        if name.endswith(("unhexlify", "a2b_hex", "fromhex")):
            return binascii.unhexlify(inner.strip())
        if name == "zlib.decompress":
            return zlib.decompressobj().decompress(inner, _DECODE_CAP)
        if name in ("gzip.decompress",):
            return zlib.decompressobj(31).decompress(inner, _DECODE_CAP)
        if name == "bz2.decompress":
            return bz2.BZ2Decompressor().decompress(inner, _DECODE_CAP)
        if name == "lzma.decompress":
            return lzma.LZMADecompressor().decompress(inner, _DECODE_CAP)
        if isinstance(codec, str) and codec.lower().replace("-", "_") in ("latin1", "latin_1", "iso8859_1"):
            return inner  # _codecs.encode(str, "latin1"): how protocol 2 spells bytes
        if isinstance(codec, str) and codec.lower() in ("base64", "base_64", "base64_codec"):
            return base64.b64decode(inner)
        if isinstance(codec, str) and codec.lower() in ("hex", "hex_codec"):
            return binascii.unhexlify(inner.strip())
        if isinstance(codec, str) and codec.lower() in ("zlib", "zip", "zlib_codec"):
            return zlib.decompressobj().decompress(inner, _DECODE_CAP)
    except (ValueError, TypeError, zlib.error, lzma.LZMAError, OSError, EOFError):
        return None
    return None


def _dict_items(value: object) -> dict[str, object]:
    if isinstance(value, _Seq) and value.kind == "dict":
        it = value.items
        return {k.value: v for k, v in zip(it[::2], it[1::2]) if isinstance(k, _Const) and isinstance(k.value, str)}
    return {}


def is_joblib_wrapper_global(ref: GlobalRef) -> bool:
    """Whether ``ref`` is joblib's array wrapper, after whose BUILD ``joblib.load`` reads raw array bytes."""
    return ref.name == "NumpyArrayWrapper" and ref.module.startswith("joblib.")


def _is_joblib_wrapper(obj: _Obj) -> bool:
    return isinstance(obj.origin, _Global) and is_joblib_wrapper_global(obj.origin.ref)


def _dtype_descr(dtype: object) -> str | None:
    # numpy pickles a dtype as REDUCE(numpy.dtype, ('f8', False, True)) then BUILD(state).
    if isinstance(dtype, _Obj) and isinstance(dtype.origin, _Global) and dtype.origin.ref.name == "dtype":
        args = dtype.args
        if isinstance(args, _Seq) and args.items and isinstance(args.items[0], _Const):
            value = args.items[0].value
            if isinstance(value, str):
                return value
    return None


def _itemsize(descr: str) -> int | None:
    body = descr.lstrip("<>|=")
    if not body:
        return None
    kind, digits = body[0], body[1:]
    if kind == "?" and not digits:
        return 1
    if not digits.isdigit():
        return None
    n = int(digits)
    if kind in "biufcMm":
        return n
    if kind in "SV":
        return n
    if kind == "U":
        return 4 * n
    return None


def _describe(value: object) -> str:
    if isinstance(value, _Global):
        return f"global {value.ref.dotted}"
    if isinstance(value, _Const):
        if isinstance(value.value, _Span):
            return f"bytes[{value.value.length}]"
        return f"{type(value.value).__name__} {value.value!r:.60}"
    if isinstance(value, _Seq):
        return value.kind
    if isinstance(value, _Obj):
        origin = value.origin
        if isinstance(origin, _Global):
            return f"result of {origin.ref.dotted}"
        return "computed object"
    return type(value).__name__


def analyse_one(
    data: Buffer,
    start: int = 0,
    *,
    profile: str = "torch",
    extra_globals: frozenset[str] = frozenset(),
    limits: Limits = Limits(),
    depth: int = 0,
    nested: NestedScan | None = None,
    torch_context: bool = True,
    joblib: bool = False,
    persistent_load: bool = True,
) -> tuple[PickleReport, int | None]:
    """Analyse the single pickle starting at ``start``.

    Returns:
        The report and the offset just after its STOP, or ``None`` when it did not parse to a STOP.
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    machine = _Machine(
        view, start, allowed=profile_globals(profile, extra_globals), torch_context=torch_context, limits=limits,
        depth=depth, nested=nested, profile=profile, extra_globals=extra_globals, joblib=joblib,
        persistent_load=persistent_load,
    )
    end: int | None
    try:
        end = machine.run()
    except _LimitError as exc:
        verdict = Verdict.MALICIOUS if machine.bad_global else Verdict.UNSCANNABLE
        machine.issues.append(Issue(verdict, f"resource limit: {exc}", exc.offset))
        end = None
    except _ParseError as exc:
        if machine.globals or machine.calls:
            machine._anomaly(f"parse error: {exc}", exc.offset)
        else:
            machine.issues.append(Issue(Verdict.UNSCANNABLE, f"parse error before any global: {exc}", exc.offset))
        end = None
    except RecursionError:  # pragma: no cover - nesting is capped by max_depth long before this
        machine.issues.append(Issue(Verdict.UNSCANNABLE, "nesting too deep", machine.pos))
        end = None
    report = PickleReport(
        tuple(machine.globals), tuple(machine.issues), end or 0, 1 if end is not None else 0, machine.opcodes,
        machine.calls, end is not None and end == len(view),
    )
    return report, end


def analyse_pickle(
    data: Buffer,
    *,
    profile: str = "torch",
    extra_globals: frozenset[str] = frozenset(),
    limits: Limits = Limits(),
    depth: int = 0,
    nested: NestedScan | None = None,
    torch_context: bool = True,
    joblib: bool = False,
    start: int = 0,
    persistent_load: bool = True,
) -> PickleReport:
    """Analyse every concatenated pickle in ``data`` from ``start`` to the end (reference §3.1: scan to EOF).

    A tail that is not a pickle after at least one complete pickle is a structural anomaly ("trailing data").

    Args:
        data: the bytes (a memoryview of an mmap is fine: big arguments are skipped, not copied).
        profile: allow-list profile name(s), ``+``-joined (see :mod:`pickle_profiles`).
        extra_globals: ``module.name`` strings the repository allows in addition.
        limits: resource caps; ``limits.max_opcodes`` counts over all concatenated pickles.
        nested: scanner for zip archives found inside bytes constants.
        torch_context: BINPERSID ``('storage', ...)`` ids are torch storages (allowed).
        joblib: emulate joblib's inline NumpyArrayWrapper arrays.
        persistent_load: the loader resolves persistent ids (torch's ``data.pkl``); without one PERSID/BINPERSID
            ends the load, as plain ``pickle.load`` does.

    Returns:
        A :class:`PickleReport`; never raises for malformed input.
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    globals_: list[GlobalRef] = []
    issues: list[Issue] = []
    pos = start
    pickles = opcodes = calls = 0
    last_end = 0
    complete = False
    remaining = limits
    while True:
        report, end = analyse_one(
            view, pos, profile=profile, extra_globals=extra_globals, limits=remaining, depth=depth, nested=nested,
            torch_context=torch_context, joblib=joblib, persistent_load=persistent_load,
        )
        known = any(g.classification is not Classification.REVIEW for g in report.globals)
        if end is None and pickles and not known and not report.calls:
            # Not a pickle: trailing bytes after a complete pickle. An unknown "global" followed by a parse error is
            # no evidence (text such as "cython\nnumpy\n" reads as GLOBAL ython.numpy); pickle.load never reads
            # past the first STOP anyway, so only multi-pickle loaders would see these bytes.
            bad = any(g.classification is not Classification.ALLOW for g in globals_)
            verdict = Verdict.MALICIOUS if bad else Verdict.UNSCANNABLE
            what = "after a non-allow-listed global: " if bad else ""
            issues.append(Issue(verdict, f"structural anomaly {what}{len(view) - pos} bytes of trailing data "
                                "after STOP", pos))
            break
        if end is None and pickles and any(g.classification is not Classification.ALLOW for g in globals_):
            # A later pickle that fails is still an anomaly after earlier bad globals.
            issues.extend(
                Issue(Verdict.MALICIOUS, i.message, i.offset) if i.verdict is Verdict.UNSCANNABLE else i
                for i in report.issues
            )
        else:
            issues.extend(report.issues)
        globals_.extend(report.globals)
        opcodes += report.opcodes
        calls += report.calls
        if end is None:
            break
        pickles += 1
        last_end = end
        pos = end
        if pos >= len(view):
            complete = True
            break
        remaining = Limits(
            max_opcodes=max(limits.max_opcodes - opcodes, 1), max_stack=limits.max_stack, max_memo=limits.max_memo,
            max_get_ratio=limits.max_get_ratio, max_depth=limits.max_depth, deadline=limits.deadline,
        )
    return PickleReport(tuple(globals_), tuple(issues), last_end, pickles, opcodes, calls, complete)
