"""Lint of the trust store (``allowed_signers``) against the policy, for ``gatekeeper policy lint`` only.

This is not the verifier's parser (that lives with signature verification); it catches the configuration mistakes
that silently widen or break trust (reference: signatures-and-audit-log.md §A4):

- a principal pattern (``*``, ``?``, ``!``): ssh-keygen treats principals as ``ssh_config`` patterns, so ``*`` would
  let that key approve as *anyone*; gatekeeper principals must be exact people names;
- a principal that is no person in the policy (the key can approve as nobody), and people without any key;
- ``valid-after``/``valid-before`` without ``Z``: ssh-keygen reads them in *local time* (§A4 gotcha 2);
- duplicate options or an empty window, which make ssh-keygen skip the line (§A4 gotcha 3);
- ``namespaces=`` that excludes the approval namespace (the key can never approve);
- malformed lines, which ssh-keygen logs and skips (§A4 gotcha 4): a typo must not quietly disable a reviewer.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
_TIME_RE = re.compile(r"(\d{8}|\d{12}|\d{14})(Z|UTC)?\Z")
_OPTION_RE = re.compile(r'([A-Za-z-]+)(?:="([^"]*)")?\Z')


def _tokens(line: str) -> list[str] | None:
    """Split on white space outside double quotes; None on an unbalanced quote."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch.isspace() and not quoted:
            if current:
                out.append("".join(current))
                current = []
        else:
            current.append(ch)
    if quoted:
        return None
    if current:
        out.append("".join(current))
    return out


def _split_options(text: str) -> list[str] | None:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return None if quoted else parts


def check(
    path: Path, people: Mapping[str, object], namespace: str, max_bytes: int, read: Callable[[Path, int], bytes],
) -> Iterator[tuple[int, str, str]]:
    """Yield ``(line, message, severity)`` for every problem in the allowed_signers file at ``path``.

    ``read(path, limit)`` reads at most ``limit`` bytes of a regular file (the policy loader's non-blocking reader).
    """
    try:
        data = read(path, max_bytes + 1)
    except OSError as exc:
        yield 1, f"cannot read: {exc.strerror or exc}", "error"
        return
    if len(data) > max_bytes:
        yield 1, f"file is bigger than {max_bytes} bytes", "error"
        return
    keyed: set[str] = set()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            yield number, "line is not UTF-8", "error"
            continue
        if not line or line.startswith("#"):
            continue
        tokens = _tokens(line)
        if tokens is None or len(tokens) < 3:
            yield number, "malformed line (expected: principals [options] keytype base64-key); ssh-keygen skips it", \
                "error"
            continue
        principals_text, rest = tokens[0], tokens[1:]
        options_text = None
        if rest[0] not in KEY_TYPES:
            options_text, rest = rest[0], rest[1:]
        if not rest or rest[0] not in KEY_TYPES or len(rest) < 2:
            what = rest[0] if rest else "nothing"
            yield number, f"unknown or missing key type ({what!r}); ssh-keygen skips this line", "error"
            continue
        principals = principals_text.strip('"').split(",")
        for principal in principals:
            if not principal or any(ch in principal for ch in "*?!"):
                yield number, (f"principal {principal!r} is a pattern or empty; gatekeeper principals must be exact "
                               "people names (a pattern lets this key approve as anyone it matches)"), "error"
            elif principal not in people:
                yield number, f"principal {principal!r} is not a person in the policy; this key approves for nobody", \
                    "warning"
            else:
                keyed.add(principal)
        if options_text is not None:
            yield from _check_options(number, options_text, namespace)
    for name in people:
        if name not in keyed:
            yield 1, f"person {name!r} has no key in this file and cannot approve", "warning"


def _check_options(number: int, text: str, namespace: str) -> Iterator[tuple[int, str, str]]:
    parts = _split_options(text)
    if parts is None:
        yield number, "unbalanced quote in options", "error"
        return
    seen: set[str] = set()
    times: dict[str, str] = {}
    for part in parts:
        match = _OPTION_RE.match(part)
        if not match:
            yield number, f"malformed option {part!r}", "error"
            continue
        name, value = match.group(1).lower(), match.group(2)
        if name in seen:
            yield number, f"option {name!r} given twice; ssh-keygen rejects the line", "error"
        seen.add(name)
        if name in ("valid-after", "valid-before"):
            time = _TIME_RE.match(value or "")
            if not time:
                yield number, f"{name}={value!r} is not YYYYMMDD[HHMM[SS]]Z", "error"
            elif not time.group(2):
                yield number, (f"{name}=\"{value}\" has no 'Z': ssh-keygen reads it in the server's local time; "
                               "append Z"), "error"
            else:
                times[name] = time.group(1).ljust(14, "0")
        elif name == "namespaces":
            patterns = (value or "").split(",")
            if not any(fnmatch.fnmatchcase(namespace, p) for p in patterns if not p.startswith("!")) or any(
                    fnmatch.fnmatchcase(namespace, p[1:]) for p in patterns if p.startswith("!")):
                yield number, f"namespaces={value!r} excludes {namespace!r}: this key cannot sign approvals", \
                    "warning"
        elif name != "cert-authority":
            yield number, f"unknown option {name!r}; ssh-keygen rejects the line", "error"
    if "valid-after" in times and "valid-before" in times and times["valid-before"] <= times["valid-after"]:
        yield number, "valid-before is not after valid-after; ssh-keygen rejects the line", "error"
