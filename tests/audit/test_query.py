"""`query`, its filters and the derived index."""

from __future__ import annotations

import sqlite3
import unicodedata
from pathlib import Path

import pytest

import gatekeeper.audit.log as log_module
from gatekeeper.audit.query import Glob, Index, find_record, index_path, parse_time, query
from gatekeeper.errors import AuditError

from .helpers import Env, decision, outcome


@pytest.fixture
def log(env: Env, monkeypatch: pytest.MonkeyPatch) -> Path:
    times = iter(f"2026-11-{day:02d}T12:00:00.000000Z" for day in range(1, 30))
    monkeypatch.setattr(log_module, "utc_timestamp", lambda now=None: next(times))
    w = env.writer()
    w.append(decision(0, user="alice", paths=("models/llama.py", "README.md")))  # seq 0, Nov 1
    w.append(outcome(user="alice"))  # 1
    w.append(decision(2, user="bob", decision="deny", paths=("weights/Model.PKL",)))  # 2
    w.append(decision(3, user="carol", repo="ml/other", ref="refs/heads/release/1.0",
                      paths=("configs/train.yaml",)))  # 3
    w.append(decision(4, user="mallory", decision="break-glass", ref="refs/heads/feature/x",
                      paths=(unicodedata.normalize("NFD", "models/modèle.py"),)))  # 4
    w.append({"type": "recovery", "reason": "torn-tail", "offset": 0, "bytes": 3, "sha256": "0" * 64})  # 5
    return env.log_path


def _seqs(log: Path, **kwargs: object) -> list[int]:
    results = {index: [int(r["seq"]) for r in query(log, index=index, **kwargs)]  # type: ignore[arg-type]
               for index in (True, False)}
    assert results[True] == results[False], "the index must not change the answer"
    return results[True]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [0, 1, 2, 3, 4, 5]),
        ({"repo": "ml/other"}, [3]),
        ({"pusher": "alice"}, [0, 1]),
        ({"decision": "deny"}, [2]),
        ({"decision": "break-glass"}, [4]),
        ({"type_": "push.outcome"}, [1]),
        ({"type_": "recovery"}, [5]),
        ({"ref": "refs/heads/main"}, [0, 1, 2]),
        ({"ref": "refs/heads/*"}, [0, 1, 2]),  # '*' stays within one component
        ({"ref": "refs/heads/**"}, [0, 1, 2, 3, 4]),
        ({"ref": "refs/heads/release/**"}, [3]),
        ({"path_glob": "models/**"}, [0, 4]),
        ({"path_glob": "*.pkl"}, [2]),  # case-insensitive, any depth
        ({"path_glob": "**/*.yaml"}, [3]),
        ({"path_glob": "models"}, [0, 4]),  # a directory matches what is below it
        ({"path_glob": "models/modèle.py"}, [4]),  # NFC: the stored path is decomposed
        ({"path_glob": "MODELS/LLAMA.PY"}, [0]),
        ({"path_glob": "/readme.md"}, [0]),
        ({"path_glob": "odels/**"}, []),
        ({"path_glob": "models/[a-l]*.py"}, [0]),
        ({"since": "2026-11-03", "until": "2026-11-05T00:00:00Z"}, [2, 3]),
        ({"since": "2026-11-03T13:00:00+01:00"}, [2, 3, 4, 5]),  # 12:00Z is included
        ({"pusher": "alice", "type_": "push.decision"}, [0]),
        ({"repo": "ml/llama", "path_glob": "*.pkl", "decision": "allow"}, []),
    ],
)
def test_filters(log: Path, kwargs: dict[str, object], expected: list[int]) -> None:
    assert _seqs(log, **kwargs) == expected


def test_extra_predicates_compose(log: Path) -> None:
    def protected(record: dict[str, object]) -> bool:
        event = record["event"]
        assert isinstance(event, dict)
        return any(u.get("protected") for u in event.get("updates", []))

    assert _seqs(log, extra=(protected,), pusher="bob") == [2]


def test_invalid_times_and_patterns(log: Path) -> None:
    with pytest.raises(AuditError, match="invalid time 'yesterday'"):
        query(log, since="yesterday")
    with pytest.raises(AuditError, match="empty path pattern"):
        query(log, path_glob="/")
    with pytest.raises(AuditError, match="does not exist"):
        query(log.with_name("missing.jsonl"), repo="x")


def test_parse_time() -> None:
    assert parse_time("2026-11-25") == "2026-11-25T00:00:00.000000Z"
    assert parse_time("2026-11-25T21:55:01+01:00") == "2026-11-25T20:55:01.000000Z"
    assert parse_time("2026-11-25T20:55:01.5Z") == "2026-11-25T20:55:01.500000Z"


def test_glob_literals_are_a_superset_filter() -> None:
    glob = Glob.path("models/**/modeling_*.py")
    assert glob.prefix == "models/" and glob.literals == ("models", "modeling_", ".py")
    assert Glob.path("models/[a-l]*.py").literals == ("models", ".py")
    assert glob.match("models/a/b/modeling_x.py") and glob.match("models/modeling_x.py")
    assert not glob.match("other/models/modeling_x.py")


def test_index_is_incremental_and_rebuilt_when_the_log_changes(env: Env, log: Path) -> None:
    assert _seqs(log, pusher="zoe") == []
    assert index_path(log).exists()
    env.writer().append(decision(6, user="zoe"))
    assert _seqs(log, pusher="zoe") == [6]
    # Rewrite the log behind the index's back (same length, different content): the index notices and rebuilds.
    data = log.read_bytes().replace(b'"user":"zoe"', b'"user":"zed"')
    log.write_bytes(data)
    assert _seqs(log, pusher="zoe") == []
    assert _seqs(log, pusher="zed") == [6]
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:2]))  # shorter
    assert _seqs(log, pusher="bob") == []


def test_a_tampered_index_cannot_invent_records(log: Path) -> None:
    Index(log).update().close()
    conn = sqlite3.connect(index_path(log))
    conn.execute("UPDATE rec SET user = 'mallory', decision = 'allow'")
    conn.commit()
    conn.close()
    # Every candidate is re-checked against the log: only the record that really is mallory's comes out.
    assert [r["seq"] for r in query(log, pusher="mallory")] == [4]
    assert [r["seq"] for r in query(log, decision="allow", pusher="mallory")] == []


def test_corrupt_index_is_rebuilt(log: Path) -> None:
    index_path(log).write_bytes(b"this is not sqlite" * 100)
    assert _seqs(log, pusher="bob") == [2]


def test_unusable_index_falls_back_to_scanning(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: Index) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(Index, "update", fail)
    assert [r["seq"] for r in query(log, pusher="bob")] == [2]
    assert find_record(log, 3) is not None


def test_find_record(log: Path) -> None:
    found = find_record(log, 2)
    assert found is not None
    assert (found.line, found.record["seq"]) == (3, 2)
    assert found.hash == find_record(log, 2, index=False).hash  # type: ignore[union-attr]
    assert find_record(log, 99) is None
    assert find_record(log, 99, index=False) is None


def test_hostile_lines_in_queries(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gatekeeper.audit.query as query_module

    with open(log, "ab") as fh:
        fh.write(b"[" * 200_000 + b"]" * 200_000 + b"\n")
    assert _seqs(log, pusher="bob") == [2]
    assert len(list(query(log))) == 6  # unparsable lines are skipped (verify reports them)
    monkeypatch.setattr(query_module, "MAX_LINE_BYTES", 1000)
    with open(log, "ab") as fh:
        fh.write(b"x" * 5000)
    with pytest.raises(AuditError, match="a line longer than 1000 bytes"):
        list(query(log, index=False))


_COMPONENT_PATHS = (
    "a/b.pkl/c.txt",  # a directory named like the pattern: the path is below a match
    "X.PKL", "deep/er/Y.pkl", "/lead.pkl", "a//b.pkl", "", "trail/", "noext", "d/e/f", "pkl", "a.pkl.bak",
    unicodedata.normalize("NFD", "modèle/poids.pkl"), "sub/modèle.py", "a?b/c", "x/[y].pkl",
)


@pytest.mark.parametrize("pattern", [
    "*.pkl", "*.PKL", "b.pkl", "pkl", "*", "?", "*.pk?", "modèle", "MODÈLE", "poids.*", "[y].pkl", "\\[y\\].pkl",
    "a?b", "a", "nothing-matches", "*.bak", "e", "f", "trail",
    # not one component (a class, '**', '/'): narrowed the old way, the same answers
    "[!a].pkl", "**/b.pkl", "**.pkl", "a/*", "/lead.pkl", "d/e",
])
def test_component_patterns_use_the_name_and_directory_tables_with_the_same_answers(env: Env, pattern: str) -> None:
    w = env.writer()
    for i, path in enumerate(_COMPONENT_PATHS):
        w.append(decision(i, paths=(path,), ref="refs/heads/main" if i % 2 else "refs/heads/dev"))
    w.append(decision(99, paths=_COMPONENT_PATHS[:3]))
    for extra in ({}, {"ref": "refs/heads/main"}, {"pusher": "alice"}):  # with another filter: the EXISTS probe
        _seqs(env.log_path, path_glob=pattern, **extra)


def test_one_component_patterns_are_recognised() -> None:
    assert Glob.path("*.pkl").component is not None and Glob.path("models/").component is not None
    for pattern in ("[!a].pkl", "**.pkl", "a/*", "**/x", "[a-z].pkl"):
        assert Glob.path(pattern).component is None


def test_the_index_keeps_distinct_names_and_directories(env: Env) -> None:
    w = env.writer()
    for i in range(3):
        w.append(decision(i, paths=("models/a.pkl", "models/b.pkl", "top.pkl")))
    Index(env.log_path).update().close()
    conn = sqlite3.connect(index_path(env.log_path))
    try:
        assert sorted(t for (t,) in conn.execute("SELECT text FROM name")) == ["a.pkl", "b.pkl", "top.pkl"]
        assert [t for (t,) in conn.execute("SELECT text FROM dir")] == ["models"]
        assert conn.execute("SELECT count(*) FROM path WHERE dir IS NULL").fetchone()[0] == 3
    finally:
        conn.close()
    w.append(decision(3, paths=("models/c.pkl",)))  # incremental: the dictionaries continue
    assert _seqs(env.log_path, path_glob="c.pkl") == [3]
    assert _seqs(env.log_path, path_glob="models") == [0, 1, 2, 3]
