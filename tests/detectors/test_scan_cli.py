"""`gatekeeper scan`: text and JSON output, exit statuses, options, LFS stores, binary detectors when present."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper.main import main

def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body.encode() if isinstance(body, str) else body)
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["scan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


MODEL = {
    "config.json": json.dumps({"model_type": "x", "auto_map": {"AutoModel": "modeling_x.M"}}),
    "modeling_x.py": "from .utils import h\n",
    "utils.py": "import torch\nstate = torch.load('w.bin')\n",
}


def test_text_output_blocks_and_review_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path / "m", MODEL)
    code, out, err = run(capsys, str(root))
    assert code == 0 and err == ""
    assert f"review-required: {root}/utils.py\n  changed file runs when the model is loaded [remote-code]\n" \
           f"    pulled in by config.json auto_map.AutoModel -> modeling_x.py -> utils.py\n" in out
    assert f"hint: {root}/utils.py\n  1 risky loader call(s)" in out
    assert out.endswith("summary: 3 review-required, 1 hint\n")
    strict, _, _ = run(capsys, "--strict", str(root))
    assert strict == 1


def test_malicious_hydra_target_exits_1_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path, {"conf/train.yaml": "_target_: shutil.os.system\n_args_: [id]\n"})
    code, out, _ = run(capsys, "--format", "json", str(root / "conf"))
    assert code == 1
    doc = json.loads(out)
    assert doc["exit_status"] == 1
    assert doc["summary"] == {"malicious": 1, "review-required": 1, "unscannable": 0, "hint": 0}
    first = doc["findings"][0]
    assert first == {
        "verdict": "malicious", "path": f"{root}/conf/train.yaml", "detector": "remote-code",
        "message": "hydra target shutil.os.system calls a deny-listed function when the config is instantiated",
        "evidence": ["key _target_ (with _args_)",
                     "shutil.os.system resolves into module os (reached by attribute traversal through shutil)"],
    }
    # benign twin
    write(root, {"conf/train.yaml": "_target_: torch.optim.Adam\n"})
    code, out, _ = run(capsys, "--format", "json", str(root / "conf"))
    assert code == 0 and json.loads(out)["summary"]["malicious"] == 0


def test_clean_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path, {"README.md": "hi\n", "train.py": "print(1)\n", "conf.yaml": "lr: 1\n"})
    assert run(capsys, str(root)) == (0, "summary: no findings\n", "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/nonexistent/x"], "gatekeeper scan: error: no such file or folder: /nonexistent/x\n"),
        (["--allow-global", "os", "."], "gatekeeper scan: error: --allow-global expects module.name, got 'os'\n"),
        (["--lfs-store", "/nonexistent", "."], "gatekeeper scan: error: --lfs-store /nonexistent is not a folder\n"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out, err) == (2, "", message)


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["--profile", "jax", "."], ["--format", "xml", "."]):
        with pytest.raises(SystemExit) as exc:
            main(["scan", *argv])
        assert exc.value.code == 2
    capsys.readouterr()


def test_help_documents_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["scan", "--help"])
    out = capsys.readouterr().out
    assert "0  nothing would be refused (review-required findings and hints are printed, but pass)" in out
    assert "--strict" in out and "--lfs-store DIR" in out and "--allow-global MOD.NAME" in out


def lfs_pointer(oid: str, size: int) -> str:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"


def test_lfs_pointer_without_store_and_missing_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    oid = hashlib.sha256(b"x").hexdigest()
    root = write(tmp_path / "repo", {"model.safetensors": lfs_pointer(oid, 1)})
    store = tmp_path / "lfs"
    store.mkdir()
    code, out, _ = run(capsys, "--format", "json", str(root))
    assert code == 1
    assert json.loads(out)["findings"][0]["message"] == (
        "Git LFS pointer, but no LFS store is configured: the object cannot be scanned")
    code, out, _ = run(capsys, "--format", "json", "--lfs-store", str(store), str(root))
    assert code == 1 and json.loads(out)["findings"][0]["message"] == "LFS object missing from the store"


def test_malformed_pointer_is_unscannable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path, {"w.bin": lfs_pointer("A" * 64, 1)})
    code, out, _ = run(capsys, str(root / "w.bin"))
    assert code == 1
    assert "unscannable: " + str(root / "w.bin") + "\n  malformed Git LFS pointer (oid 'AAAA" in out


def test_lfs_text_object_present_in_gitea_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = b"notes.txt content\n"
    oid = hashlib.sha256(body).hexdigest()
    root = write(tmp_path / "repo", {"notes.txt": lfs_pointer(oid, len(body))})
    store = write(tmp_path / "lfs", {f"{oid[:2]}/{oid[2:4]}/{oid[4:]}": body})
    code, out, _ = run(capsys, "--lfs-store", str(store), str(root))
    assert (code, out) == (0, "summary: no findings\n")
    write(store, {f"{oid[:2]}/{oid[2:4]}/{oid[4:]}": b"tampered content!\n"})
    code, out, _ = run(capsys, "--lfs-store", str(store), str(root))
    assert code == 1 and "LFS object does not match its pointer" in out


def test_symlinks_are_not_followed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path / "repo", {"a.txt": "x"})
    (root / "link").symlink_to("/etc/passwd")
    code, out, _ = run(capsys, str(root))
    assert code == 0 and f"hint: {root}/link\n  symlink to /etc/passwd not followed [scan]" in out


def test_malicious_pickle_and_benign_twin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # protocol 2: GLOBAL os system, then calls it: written by hand, never unpickled
    evil = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
    benign = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."
    root = write(tmp_path, {"evil.bin": evil, "ok.bin": benign})
    code, out, _ = run(capsys, "--format", "json", str(root / "evil.bin"))
    assert code == 1 and json.loads(out)["summary"]["malicious"] >= 1
    code, out, _ = run(capsys, "--format", "json", str(root / "ok.bin"))
    assert code == 0


def test_real_entry_point_exit_status(tmp_path: Path) -> None:
    root = write(tmp_path, {"c.yaml": "_target_: posix.system\n"})
    proc = subprocess.run([sys.executable, "-m", "gatekeeper", "scan", str(root)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 1 and proc.stdout.startswith(f"malicious: {root}/c.yaml\n")


def test_single_file_sees_configs_next_to_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path / "m", MODEL)
    code, out, _ = run(capsys, str(root / "utils.py"))
    assert code == 0
    assert f"review-required: {root}/utils.py\n  changed file runs when the model is loaded" in out
    assert "config.json" not in out.split("pulled in by")[0]  # only the given file is reported
