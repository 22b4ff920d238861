"""What the Docker images run, run here without Docker (there is no Docker engine on CI).

The Dockerfiles are read, not copied: the test takes their COPY sources and the RUN line that builds the venv, and
runs that line with ``/opt/gatekeeper`` and ``/usr/local/bin`` moved into a temporary folder. Then it runs the README's
Docker commands with the resulting venv: lint the policy, install the hooks, push through them, verify the audit log.

One difference from ``docker build``: the project's dependencies (pygit2, cryptography, ...) are taken from the test's
own environment (a ``.pth`` file in the new venv names a folder linking them) instead of being downloaded, so pip only
fetches its build backend (setuptools, wheel), as ``docker build`` does. The package manager lines (apt-get, apk) only
exist in their base images and are not run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from gitserver import REPO_ROOT, Server, seed_content

pytestmark = pytest.mark.slow

CLI_DOCKERFILE = REPO_ROOT / "Dockerfile"
GITEA_DOCKERFILE = REPO_ROOT / "Dockerfile.gitea"
OPT = "/opt/gatekeeper"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for line in dockerfile.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(text.split(" ", 1)[0].upper(), text.split(" ", 1)[1]) for text in logical]


def venv_run_line(dockerfile: Path) -> str:
    runs = [args for op, args in instructions(dockerfile) if op == "RUN" and "-m venv" in args]
    assert len(runs) == 1, runs
    return runs[0]


def copied_sources(dockerfile: Path) -> set[str]:
    sources: set[str] = set()
    for op, args in instructions(dockerfile):
        if op == "COPY":
            sources.update(arg for arg in args.split()[:-1] if not arg.startswith("--"))
    return sources


def test_both_images_build_the_venv_the_same_way() -> None:
    cli, gitea = venv_run_line(CLI_DOCKERFILE), venv_run_line(GITEA_DOCKERFILE)
    assert cli.startswith(f"python -m venv {OPT}/venv && ")
    assert gitea.startswith(f"python3 -m venv {OPT}/venv && ")
    # Same install and self-check; the Gitea image adds only the link onto PATH.
    assert gitea.replace("python3 -m venv", "python -m venv", 1).startswith(cli + " && ")
    assert copied_sources(CLI_DOCKERFILE) == copied_sources(GITEA_DOCKERFILE) == {
        "setup.cfg", "setup.py", "README.md", "gatekeeper"}
    assert ("FROM", "gitea/gitea:1.22") in instructions(GITEA_DOCKERFILE)


def _dependency_folder(target: Path) -> Path:
    """Links to this environment's installed packages, except gatekeeper itself and the packaging tools."""
    site = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    skip = re.compile(r"(gatekeeper|__editable__|_gatekeeper|pip|setuptools|_distutils_hack|pkg_resources|wheel)"
                      r"([-_.].*)?$|.*\.pth$|__pycache__$", re.IGNORECASE)
    for entry in site.iterdir():
        if not skip.match(entry.name):
            (target / entry.name).symlink_to(entry)
    return target


def _sh(command: str, *, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_image_commands_outside_docker(tmp_path: Path, clean_env: Path) -> None:
    opt = tmp_path / "opt" / "gatekeeper"
    opt.mkdir(parents=True)
    for source in copied_sources(GITEA_DOCKERFILE):
        src = REPO_ROOT / source
        if src.is_dir():
            shutil.copytree(src, opt / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, opt / source)
    bindir = tmp_path / "usr-local-bin"
    bindir.mkdir()
    line = venv_run_line(GITEA_DOCKERFILE).replace(OPT, str(opt)).replace("/usr/local/bin", str(bindir))
    create, rest = line.split(" && ", 1)
    assert create == f"python3 -m venv {opt}/venv"
    _sh(f"{sys.executable} -m venv {opt}/venv", cwd=tmp_path)
    venv_site = Path(_sh(f"{opt}/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])'",
                         cwd=tmp_path).stdout.strip())
    (venv_site / "_test_dependencies.pth").write_text(f"{_dependency_folder(tmp_path / 'deps')}\n")
    out = _sh(rest, cwd=tmp_path).stdout
    assert re.search(r"^gatekeeper \d+\.\d+", out, re.M), out
    gatekeeper = bindir / "gatekeeper"
    installed = _sh(f"{opt}/venv/bin/python -I -c 'import gatekeeper; print(gatekeeper.__file__)'", cwd=tmp_path)
    assert installed.stdout.strip().startswith(str(venv_site)), installed.stdout  # not this checkout, not editable

    # The README's Docker commands, with the container's paths moved into tmp_path.
    srv = Server(tmp_path / "srv")
    seed_content(srv.clone("seeder"))
    srv.write_policy()
    _sh(f"{gatekeeper} policy lint --config {srv.config}", cwd=tmp_path)
    out = _sh(f"{gatekeeper} install {srv.bare} --config {srv.config}", cwd=tmp_path).stdout
    assert f"installed {srv.bare}/hooks/pre-receive" in out
    shim = (srv.bare / "hooks" / "pre-receive").read_text()
    assert f"GATEKEEPER_PYTHON={opt}/venv/bin/python" in shim  # python or python3.11, as pip's scripts name it

    clone = srv.clone()
    clone.write("models/llama/modeling.py", "class Llama:\n    pass  # unreviewed\n")
    clone.commit("unreviewed")
    refused = clone.push()
    assert not refused.ok and "gatekeeper: push REFUSED" in refused.remote, refused.output
    clone.write("src/train.py", "print('ok')\n")
    clone.rm("models/llama/modeling.py")
    clone.git("checkout", "-q", "HEAD~1", "--", "models/llama/modeling.py")
    clone.commit("only src")
    assert clone.push().ok
    decisions = srv.decisions()
    assert [d["decision"] for d in decisions[-2:]] == ["deny", "allow"]

    key = srv.log.parent / "audit-signing.key.pub"
    verified = _sh(f"{gatekeeper} audit verify --log {srv.log} --vkey-file {key}", cwd=tmp_path)
    assert verified.stdout.startswith(f"OK: {srv.log}: "), verified.stdout
