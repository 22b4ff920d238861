"""``gatekeeper policy lint|explain``: output and exit codes, through the real dispatcher."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from gatekeeper.main import main

WritePolicy = Callable[[str], Path]


def test_lint_clean(write_policy: WritePolicy, base_text: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(base_text)
    assert main(["policy", "lint", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == (f"{path}: ok: version 1, mode enforce, 2 protected ref patterns, 1 rule, 2 people, 1 group\n")
    assert err == ""


def test_lint_clean_with_warnings(write_policy: WritePolicy, base_text: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(base_text.replace("protected_refs: [refs/heads/main,",
                                          "protected_refs: [refs/heads/main, refs/heads/main,"))
    assert main(["policy", "lint", "--config", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}:2: warning: protected ref 'refs/heads/main' is listed twice (first on line 2)\n"
        f"{path}: ok: version 1, mode enforce, 2 protected ref patterns, 1 rule, 2 people, 1 group; 1 warning\n")


def test_lint_errors(write_policy: WritePolicy, base_text: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(base_text.replace("approvals: 1", "approvals: -1").replace("[leads]", "[laeds]"))
    assert main(["policy", "lint", "--config", str(path)]) == 1
    assert capsys.readouterr().out == (
        f"{path}:6: rule 'model-code': 'approvals' must be a whole number >= 1, not -1\n"
        f"{path}:7: rule 'model-code' names 'laeds', who is neither a person nor a group (did you mean 'leads'?)\n"
        f"{path}: 2 errors, 0 warnings\n")


def test_lint_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint", "--config", str(tmp_path / "nope.yaml")]) == 1
    assert capsys.readouterr().out == (
        f"{tmp_path / 'nope.yaml'}:1: cannot read the policy: No such file or directory\n"
        f"{tmp_path / 'nope.yaml'}: 1 error, 0 warnings\n")


FOOTNOTE = ("(any path: the built-in ml-artifacts requirement applies when the detectors find a model file that runs "
            "code on load; repository-plumbing when it is a symlink into a protected path or a submodule under one)")
HISTORY = ("    protected-ref-history (built-in): 1 approval from leads (alice, bob), force pushes and deletions of "
           "this ref")
REMOTE_PY = ("    remote-code (built-in): 1 approval from leads (alice, bob), if a config's trigger makes it run on "
             "load (its import closure, or any .py in a Hugging Face model folder)")


EXAMPLE_PATHS = ["models/llama/modeling.py", "README.md", "src/modeling_gpt.py"]


def test_explain_protected_ref(write_policy: WritePolicy, base_text: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(base_text)
    assert main(["policy", "explain", "--config", str(path), "--ref", "refs/heads/main", *EXAMPLE_PATHS]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"policy {path} (sha256 ") and lines[0].endswith("), mode enforce")
    assert lines[1:] == [
        "ref refs/heads/main: protected (matches 'refs/heads/main')",
        HISTORY,
        "models/llama/modeling.py",
        "    model-code: 1 approval from leads (alice, bob)  [pattern 'models/**']",
        REMOTE_PY,
        "README.md",
        "    no rule: changes need no approval",
        "src/modeling_gpt.py",
        "    model-code: 1 approval from leads (alice, bob)  [pattern '**/modeling_*.py']",
        REMOTE_PY,
        FOOTNOTE,
    ]


def test_explain_unprotected_ref(write_policy: WritePolicy, base_text: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(base_text)
    assert main(["policy", "explain", "--config", str(path), "--ref", "refs/heads/feature", "models/x"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == ("ref refs/heads/feature: NOT protected: pushes to it need no approvals (content scanning "
                        "still applies); rules shown are those that apply on protected refs")
    assert lines[2:] == ["models/x", "    model-code: 1 approval from leads (alice, bob)  [pattern 'models/**']",
                         FOOTNOTE]


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_explain_stdin_lines_and_nul(write_policy: WritePolicy, base_text: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(base_text)
    _stdin(monkeypatch, b"models/a\r\nREADME\n\n")
    assert main(["policy", "explain", "--config", str(path), "--ref", "refs/heads/main", "--stdin"]) == 0
    assert capsys.readouterr().out.splitlines()[3:] == [
        "models/a", "    model-code: 1 approval from leads (alice, bob)  [pattern 'models/**']",
        "README", "    no rule: changes need no approval", FOOTNOTE]
    _stdin(monkeypatch, b"Models/new\nline\0x\xff\0")
    assert main(["policy", "explain", "--config", str(path), "--ref", "refs/heads/main", "--stdin", "-z"]) == 0
    assert capsys.readouterr().out.splitlines()[3:] == [
        "Models/new\\nline", "    model-code: 1 approval from leads (alice, bob)  [pattern 'models/**']",
        "x\\xff", "    no rule: changes need no approval", FOOTNOTE]


def test_explain_usage_errors(write_policy: WritePolicy, base_text: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(base_text)
    assert main(["policy", "explain", "--config", str(path), "--ref", "refs/heads/main"]) == 2
    assert capsys.readouterr().err == "gatekeeper policy explain: error: give at least one PATH (or --stdin)\n"
    assert main(["policy", "explain", "--config", str(path), "--ref", "refs/heads/main", "-z", "x"]) == 2
    assert capsys.readouterr().err == "gatekeeper policy explain: error: -z needs --stdin\n"


def test_explain_invalid_policy_is_an_error(write_policy: WritePolicy, base_text: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write_policy(base_text.replace("mode", "x") + "mode: off\n")
    assert main(["policy", "explain", "--config", str(path), "--ref", "refs/heads/main", "x"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"gatekeeper: error: invalid policy {path}: 1 problem\n"
                   f"  {path}:17: 'mode' must be one of enforce, monitor; got False "
                   "(YAML reads unquoted yes/no/on/off as true/false: quote it)\n"
                   "hint: run: gatekeeper policy lint --config FILE\n")


def test_policy_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["policy"])
    assert info.value.code == 2
    assert "ACTION" in capsys.readouterr().err


def test_real_process_with_non_utf8_argv(write_policy: WritePolicy, base_text: str) -> None:
    path = write_policy(base_text)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "policy", "explain", "--config", str(path), "--ref", "refs/heads/main",
         b"models/\xff.bin"],
        capture_output=True, env=env, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[3:5] == ["models/\\xff.bin",
                          "    model-code: 1 approval from leads (alice, bob)  [pattern 'models/**']"]
    assert lines[5].startswith("    ml-artifacts (built-in): 1 approval from leads (alice, bob), if the detectors find")


def test_example_policy_lints_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """policy/example.yaml, installed next to an allowed_signers file, with the log directory pointed at tmp."""
    example = Path(__file__).resolve().parents[2] / "policy" / "example.yaml"
    text = example.read_text()
    assert text.count("/var/log/gatekeeper/") == 1
    (tmp_path / "log").mkdir()
    config = tmp_path / "policy.yaml"
    config.write_text(text.replace("/var/log/gatekeeper/", f"{tmp_path}/log/"))
    (tmp_path / "allowed_signers").write_text("".join(
        f"{name} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample{name}\n"
        for name in ("alice", "bob", "carol", "dave", "erin")))
    assert main(["policy", "lint", "--config", str(config)]) == 0
    assert capsys.readouterr().out == (
        f"{config}: ok: version 1, mode enforce, 3 protected ref patterns, 5 rules, 5 people, 4 groups\n")
    # and it does what its comments say
    assert main(["policy", "explain", "--config", str(config), "--ref", "refs/heads/release/2024/q1",
                 "models/llama/modeling_llama.py", "checkpoints/step1/pytorch_model.bin", ".gitattributes",
                 "sub/dir/.gitattributes", "configs/train.yaml", "docs/index.md"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "ref refs/heads/release/2024/q1: protected (matches 'refs/heads/release/**')"
    # the built-in requirements (the gate's, whatever the policy says) are listed too: checked in their own tests
    builtin = [line for line in out[2:] if "(built-in)" in line]
    assert builtin[0].startswith("    protected-ref-history (built-in): 2 approvals")
    assert sum("repository-plumbing (built-in)" in line for line in builtin) == 2
    assert out[-1].startswith("(any path: ")
    assert [line for line in out[2:-1] if "(built-in)" not in line] == [
        "models/llama/modeling_llama.py",
        "    model-code: 1 approval from ml-leads (alice, bob)  [pattern 'models/**']",
        "checkpoints/step1/pytorch_model.bin",
        "    weights: 1 approval from ml-leads (alice, bob)  [pattern '*.bin']",
        ".gitattributes",
        "    repository-plumbing: 1 approval from infra (carol, dave)  [pattern '.gitattributes']",
        "sub/dir/.gitattributes",
        "    repository-plumbing: 1 approval from infra (carol, dave)  [pattern '.gitattributes']",
        "configs/train.yaml",
        "    training-configs: 1 approval from ml-leads, infra (alice, bob, carol, dave)  [pattern 'configs/**']",
        "docs/index.md",
        "    no rule: changes need no approval",
    ]


def test_lint_json(write_policy: WritePolicy, base_text: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    path = write_policy(base_text.replace("approvals: 1", "approvals: -1"))
    assert main(["policy", "lint", "--config", str(path), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "gatekeeper.policy-lint/1" and doc["ok"] is False
    assert doc["problems"] == [{"file": str(path), "line": 6, "severity": "error",
                                "message": "rule 'model-code': 'approvals' must be a whole number >= 1, not -1"}]
    assert main(["policy", "lint", "--config", str(write_policy(base_text)), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"schema": "gatekeeper.policy-lint/1", "config": str(path),
                                                   "ok": True, "problems": []}
