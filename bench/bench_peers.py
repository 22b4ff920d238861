#!/usr/bin/env python3
"""gatekeeper's content scanner side by side with picklescan, modelaudit and fickling (issue 10, item 8).

The peers are installed from PyPI into the bench's own venv (``bench/.work/venv``, created on first run, never
committed) and run there, one driver process per tool; gatekeeper runs in this interpreter. Nothing is unpickled by
this script: every tool is a static scanner.

Sample sets:

* the shared picklescan corpus (``labels.tsv``: ``malicious`` / ``block`` are malicious, ``clean`` /
  ``not-malicious`` are benign, ``any`` is left out);
* the project's own labelled set, taken from ``tests/detectors/test_pickle_bypass.py``: a payload pickle for every
  deny-list gap and dotted-name traversal there (malicious) and the allow-listed benign twins (benign).

Per tool and set: caught (called malicious), review (a blocking or warning verdict short of malicious: gatekeeper's
``review-required``/``unscannable``, picklescan's exit 2 or "suspicious", modelaudit's warnings, fickling's "not
likely safe" below its highest severity), missed (called clean), false refusals (a benign file called malicious or
made to block), and throughput relative to gatekeeper on the same files.

    python bench/bench_peers.py [--quick] [--corpus ../shared/corpora/picklescan]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / "bench" / ".work" / "venv"
PEERS = ("picklescan", "modelaudit", "fickling")
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "detectors"))

# Runs inside the peers' venv: one tool over a list of files, prints {"verdicts": {path: verdict}, "seconds": s}.
DRIVER = r'''
import json, logging, sys, time
logging.disable(logging.CRITICAL)
tool, paths = sys.argv[1], json.loads(sys.stdin.read())

def picklescan_verdict(path):
    from picklescan.scanner import scan_file_path
    r = scan_file_path(path)
    if r.infected_files: return "malicious"
    if r.scan_err: return "review"
    return "review" if r.suspicious_count else "clean"

def modelaudit_verdict(path):
    from modelaudit.core import scan_model_directory_or_file
    r = scan_model_directory_or_file(path)
    issues = r.get("issues", []) if isinstance(r, dict) else getattr(r, "issues", [])
    sev = set()
    for i in issues:
        s = i.get("severity") if isinstance(i, dict) else getattr(i, "severity", None)
        sev.add(str(getattr(s, "value", s)).lower())
    if "critical" in sev: return "malicious"
    if "warning" in sev: return "review"
    return "clean"

def fickling_verdict(path):
    import fickling
    from fickling.analysis import check_safety, Severity
    from fickling.fickle import Pickled
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        result = check_safety(Pickled.load(data))
    except Exception:
        return "review"  # fickling cannot parse it (zip checkpoints and the like)
    sev = result.severity
    if sev >= Severity.LIKELY_UNSAFE: return "malicious"
    if sev > Severity.LIKELY_SAFE: return "review"
    return "clean"

fn = {"picklescan": picklescan_verdict, "modelaudit": modelaudit_verdict, "fickling": fickling_verdict}[tool]
out = {}
start = time.perf_counter()
for p in paths:
    try:
        out[p] = fn(p)
    except Exception as exc:
        out[p] = "error"
print(json.dumps({"verdicts": out, "seconds": time.perf_counter() - start}))
'''


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    missing = [p for p in PEERS if subprocess.run([str(python), "-c", f"import {p}"], capture_output=True).returncode]
    if missing:
        print(f"installing {', '.join(missing)} from PyPI into {VENV} ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *missing], check=True)
    return python


def corpus_samples(corpus: Path) -> list[tuple[Path, bool]]:
    rows = [line.split("\t") for line in (corpus / "labels.tsv").read_text().splitlines()[1:] if line.strip()]
    labels = {"malicious": True, "block": True, "clean": False, "not-malicious": False}
    return [(corpus / rel, labels[label]) for rel, label in rows if label in labels]


def project_samples(root: Path) -> list[tuple[Path, bool]]:
    import test_pickle_bypass as t  # the scanner's own hand-built labelled pairs

    out: list[tuple[Path, bool]] = []
    # the benign twins of test_benign_twin_allow_listed_global_is_clean
    allow = [("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch", "FloatStorage"),
             ("_codecs", "encode"), ("builtins", "set"), ("torch", "Size")]
    cases = [(f"deny_{m}.{n}", t.p2(t.call(t.glob(m, n))), True) for m, n in t.DENY_GAPS]
    cases += [(f"dotted_{m}.{n}", t.p4(t.call(t.sglobal(m, n))), True) for m, n in t.DOTTED]
    cases += [(f"benign_{m}.{n}", t.p2(t.call(t.glob(m, n))), False) for m, n in allow]
    cases.append(("benign_baseline", t.BENIGN, False))
    for name, data, malicious in cases:
        path = root / f"{name}.pkl"
        path.write_bytes(data + (b"." if not data.endswith(b".") else b""))
        out.append((path, malicious))
    return out


def gatekeeper_verdicts(paths: list[Path], repeat: int) -> tuple[dict[str, str], float]:
    from gatekeeper.detectors.content import scan_blob

    verdicts: dict[str, str] = {}
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for p in paths:
            findings = scan_blob(p.name, p.read_bytes())
            worst = findings[0].verdict.value if findings else "clean"
            verdicts[str(p)] = {"malicious": "malicious", "clean": "clean", "hint": "clean"}.get(worst, "review")
        best = min(best, time.perf_counter() - start)
    return verdicts, best


def peer_verdicts(python: Path, tool: str, paths: list[Path], repeat: int) -> tuple[dict[str, str], float]:
    best, verdicts = float("inf"), {}
    for _ in range(repeat):
        # No telemetry: the peers must not phone home (and waiting on a blocked network would be timed as scanning).
        env = dict(os.environ, PROMPTFOO_DISABLE_TELEMETRY="1", NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
        proc = subprocess.run([str(python), "-c", DRIVER, tool], input=json.dumps([str(p) for p in paths]),
                              capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            return {str(p): "error" for p in paths}, float("nan")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        verdicts, best = result["verdicts"], min(best, result["seconds"])
    return verdicts, best


def table(name: str, samples: list[tuple[Path, bool]], results: dict[str, tuple[dict[str, str], float]]) -> None:
    n_bad = sum(m for _, m in samples)
    print(f"\n### {name}: {len(samples)} files ({n_bad} malicious, {len(samples) - n_bad} benign)\n")
    print("| tool | caught | review | missed | false refusals | errors | time | speed vs gatekeeper |")
    print("|---|---|---|---|---|---|---|---|")
    base = results["gatekeeper"][1]
    for tool, (verdicts, seconds) in results.items():
        caught = review = missed = false = errors = 0
        for path, malicious in samples:
            v = verdicts.get(str(path), "error")
            errors += v == "error"
            if malicious:
                caught += v == "malicious"
                review += v in ("review", "error")
                missed += v == "clean"
            else:
                false += v in ("malicious", "error")
        speed = f"{base / seconds:.2g}x" if seconds == seconds and seconds > 0 else "n/a"
        print(f"| {tool} | {caught} | {review} | {missed} | {false} | {errors} | {seconds * 1000:.0f} ms | {speed} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpora" / "picklescan")
    parser.add_argument("--quick", action="store_true", help="one timed pass per tool instead of three")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    python = ensure_venv()
    print("(timings: best of passes on a shared, loaded machine; each peer's includes its interpreter's per-file "
          "work only, not its start-up)")
    with tempfile.TemporaryDirectory(prefix="gk-peers-") as tmp:
        sets = [("picklescan corpus", corpus_samples(args.corpus)), ("project samples", project_samples(Path(tmp)))]
        for name, samples in sets:
            paths = [p for p, _ in samples]
            results = {"gatekeeper": gatekeeper_verdicts(paths, repeat)}
            for tool in PEERS:
                results[tool] = peer_verdicts(python, tool, paths, repeat)
            table(name, samples, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
