"""What ``git archive`` writes into files marked ``export-subst``, when it is not in the tree.

``git archive`` (a forge's "download ZIP/tar.gz", release tarballs, ``pip install https://.../archive/main.zip``)
replaces each ``$Format:<pretty format>$`` in a file whose ``.gitattributes`` set ``export-subst`` with that format
expanded for the archived commit (``archive.c`` ``format_subst``). Hashes and dates are facts of the commit; the
subject, body, author name, ref names or ``git describe`` output are text whoever pushes writes, after the file was
reviewed: ``BUILD = \"\"\"$Format:%B$\"\"\"`` in reviewed model code runs the next commit message in every tarball.
This module finds such placeholders; the push gate decides where they apply.
"""

from __future__ import annotations

import mmap
import re

__all__ = ["asks_export_subst", "pusher_text_placeholders"]

# A placeholder whose expansion the pusher cannot choose: %% and %n, a byte written as %xNN, commit/tree/parent
# hashes, author and committer dates in any date format. Optional "+", "-" or " " modifiers come first.
_SAFE = re.compile(rb"%[-+ ]?(?:%|n|x[0-9a-fA-F]{2}|[HhTtPp]|[ac][dDrtiIsh])")
_FORMAT = re.compile(rb"\$Format:([^$]*)\$")
_EXPORT_SUBST = re.compile(rb"(?:^|\s)export-subst(?=\s|$)", re.IGNORECASE)


def asks_export_subst(attributes: bytes) -> bool:
    """Whether a ``.gitattributes`` text sets ``export-subst`` anywhere (``-export-subst`` and ``!export-subst`` do
    not). Read without patterns and with macros (``[attr]name export-subst``) like any line: a superset."""
    return _EXPORT_SUBST.search(attributes) is not None


def pusher_text_placeholders(data: bytes | mmap.mmap, *, limit: int = 5) -> list[str]:
    """The ``$Format:...$`` strings in ``data`` that expand to text a pusher chooses (up to ``limit``)."""
    out: list[str] = []
    for match in _FORMAT.finditer(data):
        fmt = match.group(1)
        rest = _SAFE.sub(b"", fmt)
        if b"%" in rest:
            out.append(match.group(0).decode("utf-8", "backslashreplace")[:80])
            if len(out) >= limit:
                break
    return out
