"""Unit tests of the forge layouts: app.ini as Gitea reads it, repository discovery, shim inspection, the lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forges.forgelib import cli, write_policy
from gatekeeper.hosting.forges import (
    ForgeError, gitea_repositories, gitea_root, gitea_root_from_app_ini, read_app_ini, sync_lock,
)
from gatekeeper.hosting.install import ShimSpec, inspect_shim, write_shim


def ini(tmp_path: Path, text: str, rel: str = "app.ini") -> Path:
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_app_ini_is_read_as_go_ini_reads_it(tmp_path: Path) -> None:
    parsed = read_app_ini(ini(tmp_path, (
        "APP_NAME = Gitea: Git with a cup of tea\n"
        "WORK_PATH = /var/lib/gitea\n"
        "; a comment\n# another\n"
        "[repository]\n"
        "root = /lowercase/is/another/key\n"
        "ROOT = /srv/first\n"
        "ROOT = /srv/git ; moved here in 2024\n"
        "SCRIPT_TYPE: sh\n"
        'QUOTED = "/with spaces"\n'
        "RAW = `/keeps#hash;and;semicolons`\n"
        'LONG = """line one\nline two"""\n'
        "[server]\n"
        "APP_DATA_PATH = %(WORK_PATH)s/data\n"
        "LFS = %(APP_DATA_PATH)s/lfs\n"
        "[DEFAULT]\n"
        "RUN_USER = git\n"
    )))
    assert parsed[""] == {"APP_NAME": "Gitea: Git with a cup of tea", "WORK_PATH": "/var/lib/gitea",
                          "RUN_USER": "git"}
    assert parsed["repository"] == {
        "root": "/lowercase/is/another/key", "ROOT": "/srv/git", "SCRIPT_TYPE": "sh", "QUOTED": "/with spaces",
        "RAW": "/keeps#hash;and;semicolons", "LONG": "line one\nline two",
    }
    assert parsed["server"] == {"APP_DATA_PATH": "/var/lib/gitea/data", "LFS": "/var/lib/gitea/data/lfs"}


@pytest.mark.parametrize(("text", "message"), [
    ("[repository\nROOT = /x\n", "unclosed section header"),
    ("= value\n", "a value without a key"),
    ("[a]\nX = `never closed\n", "opens ` and never closes it"),
    ("[a]\nX = %(Y)s\nY = %(X)s\n", "nest deeper than 99 levels"),
])
def test_bad_app_ini_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ForgeError, match=message):
        read_app_ini(ini(tmp_path, text))


def test_hostile_app_ini_sizes_and_bytes(tmp_path: Path) -> None:
    big = tmp_path / "big.ini"
    big.write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(ForgeError, match="larger than"):
        read_app_ini(big)
    binary = tmp_path / "bin.ini"
    binary.write_bytes(b"[repository]\nROOT = /\xff\n")
    with pytest.raises(ForgeError, match="not UTF-8"):
        read_app_ini(binary)
    with pytest.raises(ForgeError, match="cannot read"):
        read_app_ini(tmp_path / "missing.ini")


def test_repository_root_resolution(tmp_path: Path) -> None:
    # ROOT relative to WORK_PATH
    assert gitea_root_from_app_ini(ini(tmp_path, "WORK_PATH = /w\n[repository]\nROOT = repos\n")) == Path("/w/repos")
    # default: APP_DATA_PATH/gitea-repositories, APP_DATA_PATH relative to the work path
    assert gitea_root_from_app_ini(ini(tmp_path, "WORK_PATH = /w\n[server]\nAPP_DATA_PATH = d\n")) == Path(
        "/w/d/gitea-repositories")
    assert gitea_root_from_app_ini(ini(tmp_path, "WORK_PATH = /w\n")) == Path("/w/data/gitea-repositories")
    # no WORK_PATH: the folder holding custom/conf/app.ini is the work path
    conf = ini(tmp_path, "[repository]\nROOT = r\n", "gitea/custom/conf/app.ini")
    assert gitea_root_from_app_ini(conf) == tmp_path / "gitea" / "r"
    # lower-case `root` is not Gitea's key: the default applies
    assert gitea_root_from_app_ini(ini(tmp_path, "WORK_PATH = /w\n[repository]\nroot = /x\n")) == Path(
        "/w/data/gitea-repositories")
    with pytest.raises(ForgeError, match="Gitea's work path is unknown") as info:
        gitea_root_from_app_ini(ini(tmp_path, "[repository]\nROOT = relative\n", "etc/app.ini"))
    assert "WORK_PATH" in info.value.hint


def test_gitea_root_accepts_root_app_ini_or_work_path(tmp_path: Path) -> None:
    work = tmp_path / "gitea"
    root = work / "data" / "gitea-repositories"
    root.mkdir(parents=True)
    conf = ini(tmp_path, f"WORK_PATH = {work}\n", "gitea/custom/conf/app.ini")
    assert gitea_root(conf) == root
    assert gitea_root(work) == root
    assert gitea_root(root) == root
    with pytest.raises(ForgeError, match="is not a directory"):
        gitea_root(tmp_path / "nope")


def test_repository_discovery(tmp_path: Path) -> None:
    for rel in ("ml/a.git", "ml/a.wiki.git", "zed/b.git", "ml/notes", ".hidden/c.git", "ml/.d.git"):
        (tmp_path / rel).mkdir(parents=True)
    (tmp_path / "ml" / "file.git").write_text("")
    assert [str(p.relative_to(tmp_path)) for p in gitea_repositories(tmp_path)] == [
        "ml/a.git", "ml/a.wiki.git", "zed/b.git"]


def test_empty_root_is_a_failure_not_silence(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    config = write_policy(tmp_path / "etc", "gitea")
    code, out, err = cli("doctor", "--gitea", str(tmp_path / "root"), "--config", str(config))
    assert code == 1
    assert f"FAIL: no repositories found under {tmp_path / 'root'}" in err


def test_inspect_shim_refuses_what_is_not_ours(tmp_path: Path) -> None:
    spec = ShimSpec("/usr/bin/python3", tmp_path / "p.yaml", None)
    text = spec.text("pre-receive")
    target = tmp_path / "target"
    target.write_text(text)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert inspect_shim(link, text).problems == ("not a regular file (symlink or directory)",)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 10_000_000)
    assert inspect_shim(big, text).problems == ("foreign: not written by gatekeeper",)
    with pytest.raises(Exception, match="is not gatekeeper's"):
        write_shim(big, text)
    assert big.stat().st_size == 10_000_000


def test_write_shim_is_atomic_and_idempotent(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text("")
    spec = ShimSpec(os.path.realpath("/bin/sh"), config, None)
    path = tmp_path / "pre-receive.d" / "gatekeeper"
    path.parent.mkdir()
    assert write_shim(path, spec.text("pre-receive")) is True
    assert write_shim(path, spec.text("pre-receive")) is False
    assert os.listdir(path.parent) == ["gatekeeper"]  # no temporary file left behind
    assert inspect_shim(path, spec.text("pre-receive")).ok


def test_sync_lock_excludes_a_second_sync(tmp_path: Path) -> None:
    lock = tmp_path / "forge-sync.lock"
    with sync_lock(lock, wait_seconds=0):
        with pytest.raises(ForgeError, match="another gatekeeper sync holds"):
            with sync_lock(lock, wait_seconds=0.3):
                pass
    with sync_lock(lock, wait_seconds=0):  # released
        pass


def test_cli_wants_exactly_one_target(tmp_path: Path) -> None:
    config = write_policy(tmp_path / "etc", "gitea")
    code, _, err = cli("install", str(tmp_path), "--gitea", str(tmp_path), "--config", str(config))
    assert code == 2  # usage errors exit 2 (issue 11)
    assert err.splitlines()[0] == "gatekeeper install: error: give exactly one of REPO, --gitea or " \
                                  "--gitlab-custom-hooks-dir"
    code, _, err = cli("doctor", "--config", str(config))
    assert code == 2
    assert "give exactly one of --gitea and --gitlab-custom-hooks-dir" in err


def test_pinned_gitea_refuses_a_push_that_bypassed_gitea() -> None:
    from gatekeeper.errors import InputError
    from gatekeeper.push.platform import detect_context

    env = {"GITEA_PUSHER_NAME": "alice", "GITEA_REPO_USER_NAME": "ml", "GITEA_REPO_NAME": "x"}
    with pytest.raises(InputError, match="did not come through Gitea"):
        detect_context(env, platform="gitea")
    for command, protocol in (("git-receive-pack 'ml/x.git'", "ssh"), ("receive-pack", "http"),
                              ("gitea-internal", "web")):
        assert detect_context({**env, "SSH_ORIGINAL_COMMAND": command}, platform="gitea").protocol == protocol


@pytest.mark.parametrize(("env", "prefixed"), [
    ({"GL_ID": "user-1"}, True),
    ({"GL_PROTOCOL": "web"}, True),
    ({"GL_REPOSITORY": "project-1"}, True),
    ({"GL_USER": "alice", "GL_REPO": "x"}, False),  # gitolite
    ({"GITEA_PUSHER_NAME": "alice"}, False),
])
def test_every_error_line_carries_the_gitlab_prefix(tmp_path: Path, env: dict[str, str], prefixed: bool) -> None:
    # The policy cannot even be loaded: the platform is unknown, yet GitLab's web UI must still show the reason.
    from gatekeeper.push.hook import run_pre_receive

    result = run_pre_receive(b"", env, config=tmp_path / "missing.yaml", fallback_log=tmp_path / "audit.jsonl")
    assert result.exit_code == 1
    assert len(result.lines) >= 2
    for line in result.lines:
        assert line.startswith("GL-HOOK-ERR: ") is prefixed, line


def test_prefix_covers_every_physical_line() -> None:
    from gatekeeper.push.hook import _prefixed

    assert _prefixed("GL-HOOK-ERR: ", ["a\nb", "c"]) == ["GL-HOOK-ERR: a", "GL-HOOK-ERR: b", "GL-HOOK-ERR: c"]


def test_unusable_lock_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    lock = tmp_path / "forge-sync.lock"
    lock.symlink_to(target)  # O_NOFOLLOW: a planted symlink is never followed
    with pytest.raises(ForgeError, match="cannot open the sync lock"):
        with sync_lock(lock, wait_seconds=0):
            pass
