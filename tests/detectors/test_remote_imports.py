"""Import discipline: the hook imports the detectors lazily; they must not drag in heavy or network modules."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_orchestrator_is_light() -> None:
    code = (
        "import sys, gatekeeper.detectors, gatekeeper.detectors.scan\n"
        "heavy = ['yaml', 'requests', 'pygit2', 'hashlib', 'gatekeeper.detectors.lfs',\n"
        "         'gatekeeper.detectors.import_closure', 'gatekeeper.detectors.python_hints',\n"
        "         'gatekeeper.detectors.content']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


def test_package_init_imports_nothing() -> None:
    import ast

    import gatekeeper.detectors as pkg

    assert pkg.__file__ is not None
    with open(pkg.__file__, "rb") as fh:
        tree = ast.parse(fh.read())
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr)  # the docstring, nothing else
