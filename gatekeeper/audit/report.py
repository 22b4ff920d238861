"""``audit report --html``: one static, self-contained page an auditor can read, from a file log or the fleet database.

What it shows (issue 12 item 4): decisions over time (inline SVG, stacked by outcome); refusals by rule, path and
person; break-glass pushes still unreviewed; approvals by reviewer; protected paths changed and by whom; the verify
result with the checkpoint(s) it was checked against.

Self-contained and inert: inline CSS, inline SVG, no script, no external reference of any kind, and a
Content-Security-Policy of ``default-src 'none'`` so that even a hostile path name in the log cannot make the page
fetch anything. Every value from the log is HTML-escaped (ref and path names are attacker-chosen).

Collection (:func:`collect_log`, :func:`collect_db`) is separate from rendering (:func:`render_html`), so the numbers
are testable without a browser.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatekeeper.audit.query import Filters
from gatekeeper.errors import AuditError

if TYPE_CHECKING:
    import psycopg

    from gatekeeper.policy.config import Policy

Record = dict[str, Any]
OUTCOMES = ("allow", "monitor", "deny", "break-glass", "error")
OUTCOME_LABELS = {"allow": "allowed", "monitor": "would deny, allowed (monitor)", "deny": "refused",
                  "break-glass": "break-glass", "error": "error (refused)"}
COLORS = {"allow": "#2e7d32", "monitor": "#f9a825", "deny": "#c62828", "break-glass": "#6a1b9a", "error": "#616161"}
TOP = 15
MAX_PROTECTED_ROWS = 200


@dataclass
class VerifyLine:
    """The verify result of one log (or one node's chain in the database)."""

    name: str
    ok: bool
    records: int
    root: str
    checkpoints: list[str]  # "latest central checkpoint: origin X, size N, signed by K"
    trusted: str | None  # the trusted checkpoint it was checked against, or None
    errors: list[str]
    warnings: int


@dataclass
class ReportData:
    source: str
    filters: str
    generated: str
    total: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    by_bucket: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    bucket: str = "day"
    refusals_by_rule: Counter[str] = field(default_factory=Counter)
    refusals_by_path: Counter[str] = field(default_factory=Counter)
    refusals_by_person: Counter[str] = field(default_factory=Counter)
    approvals_by_reviewer: Counter[str] = field(default_factory=Counter)
    reviewer_repos: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    protected: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> {by: Counter, count, last}
    unreviewed: list[dict[str, str]] = field(default_factory=list)
    verify: list[VerifyLine] = field(default_factory=list)

    @property
    def verify_ok(self) -> bool:
        return bool(self.verify) and all(v.ok for v in self.verify)


# -- collection -------------------------------------------------------------------------------------------------------

def outcome_of(event: dict[str, Any]) -> str | None:
    """The chart category of a push.decision: a monitor-mode deny that let the push through is not a refusal."""
    decision = event.get("decision")
    if decision == "deny" and event.get("blocked") is False:
        return "monitor"
    return decision if decision in OUTCOMES else None


def _updates(event: dict[str, Any]) -> list[dict[str, Any]]:
    ups = event.get("updates")
    return [u for u in ups if isinstance(u, dict)] if isinstance(ups, list) else []


def _strs(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _user(event: dict[str, Any]) -> str:
    pusher = event.get("pusher")
    user = pusher.get("user") if isinstance(pusher, dict) else None
    return user if isinstance(user, str) else "(unknown)"


def add_record(data: ReportData, rec: Record, node: str | None = None) -> None:
    event = rec.get("event")
    if not isinstance(event, dict) or event.get("type") != "push.decision":
        return
    kind = outcome_of(event)
    if kind is None:
        return
    data.total += 1
    data.outcomes[kind] += 1
    ts = rec.get("ts")
    if isinstance(ts, str) and len(ts) >= 13:
        data.by_bucket[ts[:10]][kind] += 1
    user = _user(event)
    refused = kind in ("deny", "error")
    landed = event.get("blocked") is False
    repo_value = event.get("repo")
    repo = repo_value if isinstance(repo_value, str) else "?"
    if refused:
        data.refusals_by_person[user] += 1
        if not _updates(event):
            data.refusals_by_rule["(whole push: " + (_strs(event.get("reasons")) or ["error"])[0][:80] + ")"] += 1
    for upd in _updates(event):
        if refused and upd.get("decision") == "deny":
            missing = [m.get("rule") for m in upd.get("missing", []) if isinstance(m, dict)] \
                if isinstance(upd.get("missing"), list) else []
            for rule in set(_strs(missing) or _strs(upd.get("rules")) or ["(no rule: see reasons)"]):
                data.refusals_by_rule[rule] += 1
            for path in _strs(upd.get("paths")):
                data.refusals_by_path[path] += 1
        if not landed:
            continue
        for approval in upd.get("approvals", []) if isinstance(upd.get("approvals"), list) else []:
            person = approval.get("person") if isinstance(approval, dict) else None
            if isinstance(person, str):
                data.approvals_by_reviewer[person] += 1
                data.reviewer_repos[person].add(repo)
        if upd.get("protected") and _strs(upd.get("rules")):
            for path in _strs(upd.get("paths")):
                entry = data.protected.setdefault(path, {"by": Counter(), "count": 0, "last": "", "repo": repo})
                entry["by"][user] += 1
                entry["count"] += 1
                entry["last"] = max(entry["last"], ts if isinstance(ts, str) else "")


def add_unreviewed(data: ReportData, rec: Record, node: str | None = None) -> None:
    raw_event = rec.get("event")
    event: dict[str, Any] = raw_event if isinstance(raw_event, dict) else {}
    raw_info = event.get("break_glass")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    refs = [str(u.get("ref")) for u in _updates(event) if u.get("decision") == "deny"]
    data.unreviewed.append({
        "where": (f"{node} " if node else "") + f"seq {rec.get('seq')}", "ts": str(rec.get("ts", "")),
        "repo": str(event.get("repo", "")), "by": str(info.get("by") or _user(event)),
        "reason": str(info.get("reason", "")), "refs": " ".join(refs),
    })


def _describe(flt: Filters) -> str:
    return ", ".join(f"{name} {value}" for name, value in flt.describe().items()) or "all records"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _verify_line(name: str, report: Any, extra_errors: Sequence[Any] = (), trusted: str | None = None) -> VerifyLine:
    labels = {"log": "checkpoint", "trusted": "trusted checkpoint"}
    cps = [f"{labels.get(i.source, 'checkpoint')} {i.path if i.source == 'trusted' else ''}".rstrip()
           + f": origin {i.origin}, size {i.size}, root {i.root[:16]}..., signed by {', '.join(i.verified_by)}"
           for i in report.checkpoints]
    trusted_info = next((i for i in report.checkpoints if i.source == "trusted"), None)
    if trusted is None and trusted_info is not None:
        trusted = f"{trusted_info.path} (size {trusted_info.size}, origin {trusted_info.origin})"
    elif trusted is not None and trusted_info is not None:
        trusted = f"{trusted} (size {trusted_info.size}, origin {trusted_info.origin})"
    errors = [str(i) for i in [*report.errors, *extra_errors]]
    return VerifyLine(name, report.ok and not extra_errors, report.records, report.root, cps, trusted, errors,
                      len(report.warnings))


def collect_log(log: Path, flt: Filters, *, vkeys: list[str] | None = None, vkey_files: Sequence[Path] = (),
                trusted: Path | None = None, policy: Policy | None = None) -> ReportData:
    from gatekeeper.audit.breakglass import unreviewed_break_glass
    from gatekeeper.audit.query import query_filters
    from gatekeeper.audit.verify import verify_log

    log = Path(log)
    data = ReportData(source=f"audit log {log}", filters=_describe(flt), generated=_now())
    for rec in query_filters(log, flt):
        add_record(data, rec)
    for rec in unreviewed_break_glass(log, flt, policy=policy):
        add_unreviewed(data, rec)
    report = verify_log(log, trusted_checkpoint=trusted, vkeys=vkeys, vkey_files=vkey_files)
    data.verify.append(_verify_line(str(log), report))
    _pick_bucket(data)
    return data


def collect_db(conn: psycopg.Connection[Any], flt: Filters, *, database: str, nodes: Sequence[str] | None = None,
               vkeys: list[str] | None = None, vkey_files: Sequence[Path] = (), state_dir: Path | None = None,
               policy: Policy | None = None) -> ReportData:
    from gatekeeper.audit import pgstore
    from gatekeeper.audit.fleet import query_db, unreviewed_break_glass_db, verify_db

    data = ReportData(source=f"fleet database {pgstore.redact(database)}", filters=_describe(flt), generated=_now())
    # Lookup tables that disagree with the records make the query exact over raw; verify below names their rows.
    for node, rec in query_db(conn, flt, nodes=nodes):
        add_record(data, rec, node)
    for node, rec in unreviewed_break_glass_db(conn, flt, nodes=nodes, policy=policy):
        add_unreviewed(data, rec, node)
    conn.rollback()
    fleet = verify_db(conn, database=database, nodes=nodes, vkeys=vkeys, vkey_files=vkey_files, state_dir=state_dir)
    for nv in fleet.nodes:
        data.verify.append(_verify_line(f"node {nv.node}", nv.report, nv.db_errors, nv.trusted))
    _pick_bucket(data)
    return data


def _pick_bucket(data: ReportData) -> None:
    """Days, filled so that quiet days show as gaps (at most 120 bars: longer spans are grouped by week)."""
    if not data.by_bucket:
        return
    days = sorted(data.by_bucket)
    first = datetime.strptime(days[0], "%Y-%m-%d")
    last = datetime.strptime(days[-1], "%Y-%m-%d")
    span = (last - first).days + 1
    if span <= 120:
        filled: dict[str, Counter[str]] = {}
        for i in range(span):
            day = (first + timedelta(days=i)).strftime("%Y-%m-%d")
            filled[day] = data.by_bucket.get(day, Counter())
        data.by_bucket = filled
        return
    weeks: dict[str, Counter[str]] = {}
    start = first - timedelta(days=first.weekday())
    for i in range(0, (last - start).days + 1, 7):
        weeks[(start + timedelta(days=i)).strftime("%Y-%m-%d")] = Counter()
    for day, counts in data.by_bucket.items():
        d = datetime.strptime(day, "%Y-%m-%d")
        weeks[(d - timedelta(days=d.weekday())).strftime("%Y-%m-%d")].update(counts)
    data.by_bucket = weeks
    data.bucket = "week"


# -- rendering --------------------------------------------------------------------------------------------------------

def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def short_time(ts: str) -> str:
    """``2026-11-25T20:55:01.123456Z`` -> ``2026-11-25 20:55:01 UTC`` (the full value stays in the log)."""
    return ts[:10] + " " + ts[11:19] + " UTC" if len(ts) >= 19 and ts[10:11] == "T" else ts


def chart_svg(data: ReportData, width: int = 900, height: int = 260) -> str:
    """Stacked bars per day (or week), one colour per outcome, y axis with gridlines; a <title> per bar segment."""
    buckets = list(data.by_bucket.items())
    left, right, top, bottom = 48, 12, 12, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((sum(c.values()) for _, c in buckets), default=0)
    step = _nice_step(peak)
    y_max = max(step * 4, step * -(-peak // step)) if peak else 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="decisions-chart" role="img" viewBox="0 0 {width} {height}"'
             f' width="{width}" height="{height}" aria-label="Push decisions per {data.bucket}">']
    for i in range(0, y_max + 1, max(step, 1)):
        y = top + plot_h - plot_h * i / y_max
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{i}</text>')
    n = max(len(buckets), 1)
    slot = plot_w / n
    bar = max(min(slot * 0.75, 40), 1)
    label_every = max(1, -(-n // 12))
    for idx, (label, counts) in enumerate(buckets):
        x = left + idx * slot + (slot - bar) / 2
        y = top + plot_h
        for kind in OUTCOMES:
            count = counts.get(kind, 0)
            if not count:
                continue
            h = plot_h * count / y_max
            y -= h
            parts.append(f'<rect class="bar" data-kind="{kind}" data-bucket="{_e(label)}" data-count="{count}" '
                         f'x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{COLORS[kind]}">'
                         f'<title>{_e(label)}: {count} {OUTCOME_LABELS[kind]}</title></rect>')
        if idx % label_every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                         f'class="axis">{_e(label[5:] if data.bucket == "day" else label)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" class="base"/>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(peak: int) -> int:
    raw = max(peak / 4, 1)
    magnitude = 10 ** (len(str(int(raw))) - 1)
    for mult in (1, 2, 5, 10):
        if mult * magnitude >= raw:
            return int(mult * magnitude)
    return int(10 * magnitude)


def _table(table_id: str, headers: Sequence[str], rows: Iterable[Sequence[object]], empty: str) -> str:
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty" id="{table_id}-empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _counter_rows(counter: Counter[str], total: int | None = None) -> list[tuple[object, ...]]:
    return [(name, count) for name, count in counter.most_common(TOP)]


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1c1c1c;margin:0;
background:#f4f5f7}
header{background:#1f2937;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#cbd5e1}
main{max-width:1000px;margin:0 auto;padding:16px 32px 48px}
section{background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:14px 20px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px}
.tiles{display:flex;gap:10px;flex-wrap:wrap}.tile{flex:1;min-width:96px;background:#fff;border:1px solid #e2e5ea;
border-radius:8px;padding:10px 14px}.tile b{display:block;font-size:24px}.tile span{color:#555}
.ok{color:#2e7d32;font-weight:600}.fail{color:#c62828;font-weight:600}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eceef1;
vertical-align:top;word-break:break-all}th{background:#f8f9fb;font-weight:600;word-break:normal;white-space:nowrap}td:last-child{word-break:normal}
.cols{display:grid;grid-template-columns:repeat(3,1fr);gap:14px}.cols h3{font-size:14px;margin:4px 0}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:11px;height:11px;
margin-right:5px;border-radius:2px;vertical-align:-1px}
.grid{stroke:#e5e7eb}.base{stroke:#9ca3af}.axis{font-size:11px;fill:#555}
.empty{color:#666;font-style:italic}code{font-size:12px;word-break:break-all}
ul.errors{color:#c62828;margin:6px 0;padding-left:20px}
"""


def render_html(data: ReportData) -> str:
    verify_ok = data.verify_ok
    refused = data.outcomes["deny"] + data.outcomes["error"]
    tiles = [("decisions", data.total, ""), ("allowed", data.outcomes["allow"], ""),
             ("refused", refused, ""), ("monitor (would deny)", data.outcomes["monitor"], ""),
             ("break-glass", data.outcomes["break-glass"], ""), ("unreviewed break-glass", len(data.unreviewed), ""),
             ("verify", "OK" if verify_ok else "FAILED", "ok" if verify_ok else "fail")]
    tile_html = "".join(f'<div class="tile" id="tile-{_e(name.split()[0])}"><b class="{cls}">{_e(value)}</b>'
                        f"<span>{_e(name)}</span></div>" for name, value, cls in tiles)
    legend = "".join(f'<span><i style="background:{COLORS[k]}"></i>{_e(OUTCOME_LABELS[k])}</span>' for k in OUTCOMES)
    verify_parts = []
    for v in data.verify:
        status = '<span class="ok">OK</span>' if v.ok else '<span class="fail">FAILED</span>'
        trusted = (f"<p>Checked against the trusted checkpoint <code>{_e(v.trusted)}</code>.</p>" if v.trusted else
                   '<p class="empty">No trusted checkpoint from an earlier audit was given: a restored older log with '
                   "its older checkpoint would also pass. Keep this report's checkpoint for next time.</p>")
        cps = "".join(f"<li><code>{_e(c)}</code></li>" for c in v.checkpoints) or "<li>none verified</li>"
        errs = ("<ul class=\"errors\">" + "".join(f"<li>{_e(e)}</li>" for e in v.errors[:20]) + "</ul>"
                if v.errors else "")
        verify_parts.append(
            f'<div class="verify" data-ok="{str(v.ok).lower()}"><h3>{_e(v.name)}: {status}</h3>'
            f"<p>{v.records} records, Merkle root <code>{_e(v.root)}</code>"
            f"{f', {v.warnings} warning(s)' if v.warnings else ''}</p><ul>{cps}</ul>{trusted}{errs}</div>")
    protected_rows = sorted(data.protected.items(), key=lambda kv: (-kv[1]["count"], kv[0]))[:MAX_PROTECTED_ROWS]
    sections = [
        f'<section id="verify"><h2>Verification</h2>{"".join(verify_parts) or "<p>not verified</p>"}</section>',
        f'<section id="over-time"><h2>Decisions over time (per {data.bucket})</h2>'
        f'<div class="legend">{legend}</div>{chart_svg(data)}</section>',
        '<section id="refusals"><h2>Refusals</h2><div class="cols">'
        + "".join(f'<div><h3>by {what}</h3>'
                  f'{_table(f"refusals-by-{what}", (column, "refusals"), _counter_rows(c), "none")}</div>'
                  for what, column, c in (("rule", "rule", data.refusals_by_rule),
                                          ("path", "path", data.refusals_by_path),
                                          ("person", "pusher", data.refusals_by_person)))
        + "</div></section>",
        '<section id="break-glass"><h2>Break-glass pushes still unreviewed</h2>'
        + _table("unreviewed", ("record", "time", "repository", "by", "reason", "refs"),
                 ([u["where"], short_time(u["ts"]), u["repo"], u["by"], u["reason"], u["refs"]]
                  for u in data.unreviewed),
                 "Every break-glass push in this period has been reviewed.") + "</section>",
        '<section id="approvals"><h2>Approvals by reviewer</h2>'
        + _table("approvals-by-reviewer", ("reviewer", "approvals counted", "repositories"),
                 ((p, c, ", ".join(sorted(data.reviewer_repos[p]))) for p, c in
                  data.approvals_by_reviewer.most_common()), "No approval was used in this period.") + "</section>",
        '<section id="protected"><h2>Protected paths changed, and by whom</h2>'
        + _table("protected-paths", ("path", "repository", "changes", "changed by", "last change"),
                 ((path, e["repo"], e["count"], ", ".join(f"{u} ({n})" for u, n in e["by"].most_common()),
                   short_time(e["last"])) for path, e in protected_rows),
                 "No protected path was changed in this period.") + "</section>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>gatekeeper audit report</title><style>{CSS}</style></head><body>"
        f"<header><h1>gatekeeper audit report</h1><p>{_e(data.source)} · {_e(data.filters)} · generated "
        f"{_e(data.generated)}</p></header><main><div class=\"tiles\">{tile_html}</div>{''.join(sections)}</main>"
        "</body></html>\n"
    )


def write_html(data: ReportData, dest: Path) -> None:
    from gatekeeper.audit.log import atomic_write

    try:
        atomic_write(Path(dest), render_html(data).encode("utf-8"))
    except OSError as exc:
        raise AuditError(f"cannot write the report {dest}: {exc.strerror or exc}") from None
