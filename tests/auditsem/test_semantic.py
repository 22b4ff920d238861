"""``verify_approvals`` over hand-built logs: records written by the real AuditLog, statements signed by ssh-keygen."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import gatekeeper.audit.log as audit_log
from gatekeeper.audit.query import query
from gatekeeper.audit.semantic import ApprovalsReport, load_policies, load_trust_stores, verify_approvals
from gatekeeper.errors import AuditError

from .semlib import (
    MODEL_PATH, NEW, Setup, approval_push, break_glass, evidence, model_change, statement, update,
)


def run(setup: Setup, *, stores: list[Path] | None = None, policies: list[Path] | None = None,
        dirs: list[Path] | None = None) -> ApprovalsReport:
    loaded = load_policies(policies if policies is not None else [setup.config])
    trust = load_trust_stores(stores or [], dirs or [], loaded.values())
    return verify_approvals(query(setup.log_path, index=False), policies=loaded, stores=trust)


def errors(report: ApprovalsReport) -> list[str]:
    return [f"{i.code} seq {i.seq}: {i.message}" for i in report.errors]


def approved(setup: Setup, person: str = "alice", **kwargs: object) -> dict[str, object]:
    return evidence(statement(person), setup.keys[person], **kwargs)  # type: ignore[arg-type]


def test_a_justified_allow_with_its_outcome_passes(setup: Setup) -> None:
    setup.append(setup.decision(update(approvals=[approved(setup)])), setup.outcome())
    report = run(setup)
    assert report.ok, errors(report)
    assert report.allows_checked == 1 and report.warnings == ()


def test_unprotected_and_unapproved_allow_needs_nothing(setup: Setup) -> None:
    upd = update(ref="refs/heads/feature", protected=False, rules=(), paths=())
    setup.append(setup.decision(upd, trust=False), setup.outcome(upd))
    assert run(setup).ok


def test_approval_by_the_pusher_is_flagged(setup: Setup) -> None:
    (seq,) = setup.append(setup.decision(update(approvals=[approved(setup, "alice")]), pusher="alice"))
    report = run(setup)
    assert not report.ok
    assert errors(report) == [
        f"bad-approval seq {seq}: refs/heads/main: approval by alice does not count: is the pusher",
        f"unjustified seq {seq}: refs/heads/main: rule model-code needs 1 approval(s), 0 re-verified (none)",
    ]


def test_ineligible_reviewer_is_flagged(setup: Setup) -> None:
    setup.append(setup.decision(update(approvals=[approved(setup, "carol")])))
    assert "approval by carol does not count: carol may not approve under model-code" in "\n".join(errors(run(setup)))


def test_tampered_statement_with_recomputed_hash_fails_the_signature(setup: Setup) -> None:
    ev = approved(setup, edit=lambda d: d.replace(b'"note": ""', b'"note": "x"'))
    setup.append(setup.decision(update(approvals=[ev])))
    text = "\n".join(errors(run(setup)))
    assert "approval by alice does not count: signature not accepted at " in text
    assert "rule model-code needs 1 approval(s), 0 re-verified" in text


def test_statement_not_matching_its_recorded_hash(setup: Setup) -> None:
    ev = approved(setup)
    ev["statement_sha256"] = "0" * 64
    setup.append(setup.decision(update(approvals=[ev])))
    assert "recorded approval: the recorded statement does not match its recorded statement_sha256" in \
        "\n".join(errors(run(setup)))


def test_signature_by_another_persons_key(setup: Setup) -> None:
    ev = evidence(statement("alice"), setup.keys["bob"])  # bob signs a statement naming alice
    setup.append(setup.decision(update(approvals=[ev])))
    assert "approval by alice does not count: signed with a key of bob, not of alice" in "\n".join(errors(run(setup)))


def test_wrong_namespace(setup: Setup) -> None:
    ev = approved(setup, namespace="git")
    setup.append(setup.decision(update(approvals=[ev])))
    assert "approval by alice does not count: signature not accepted" in "\n".join(errors(run(setup)))


def test_ref_and_repository_must_match(setup: Setup) -> None:
    other_ref = evidence(statement("alice", ref="refs/heads/release/1"), setup.keys["alice"])
    other_repo = evidence(statement("bob", repository="ml/other"), setup.keys["bob"])
    setup.append(setup.decision(update(approvals=[other_ref, other_repo])))
    text = "\n".join(errors(run(setup)))
    assert "approval by alice does not count: for refs/heads/release/1, not refs/heads/main" in text
    assert "approval by bob does not count: for repository ml/other, not ml/llama-train" in text


def test_statement_must_cover_the_recorded_paths(setup: Setup) -> None:
    st = statement("alice", changes=(model_change("models/other.py"),))
    setup.append(setup.decision(update(approvals=[evidence(st, setup.keys["alice"])])))
    assert f"approval by alice does not count: does not cover {MODEL_PATH}" in "\n".join(errors(run(setup)))


def test_a_path_matching_an_unlisted_rule_is_flagged(setup: Setup) -> None:
    upd = update(approvals=[approved(setup)], paths=(MODEL_PATH, "configs/train.yaml"))
    (seq,) = setup.append(setup.decision(upd))
    text = "\n".join(errors(run(setup)))
    assert f"unjustified seq {seq}: refs/heads/main: configs/train.yaml matches rule training-configs, which the " \
           "record does not list" in text
    assert "rule training-configs needs 1 approval(s), 0 re-verified" in text


def test_protected_ref_recorded_as_unprotected(setup: Setup) -> None:
    setup.append(setup.decision(update(protected=False, rules=(), paths=()), trust=False))
    assert "refs/heads/main: recorded as unprotected, but the policy protects it" in "\n".join(errors(run(setup)))


def test_count_per_rule_and_distinct_people(setup: Setup) -> None:
    setup.config.write_text(setup.config.read_text().replace("approvals: 1\n    reviewers: [ml-leads]\n",
                                                             "approvals: 2\n    reviewers: [ml-leads]\n"))
    once = approved(setup, "alice")
    twice = approved(setup, "alice")
    (seq,) = setup.append(setup.decision(update(approvals=[once, twice])))
    assert errors(run(setup)) == [
        f"unjustified seq {seq}: refs/heads/main: rule model-code needs 2 approval(s), 1 re-verified (alice)"]
    setup.append(setup.decision(update(approvals=[approved(setup, "alice"), approved(setup, "bob")])))
    assert len(run(setup).errors) == 1  # the second record is justified


def test_verification_happens_at_the_records_time_not_now(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    # alice's key was trusted until 2021 and her approval expired in 2020: both fine for a push made in 2020.
    setup.write_signers({"alice": 'valid-before="20210101Z"'})
    created = datetime(2020, 1, 1, tzinfo=timezone.utc)
    st = statement("alice", created=created, expires_in=timedelta(days=2))
    ev = evidence(st, setup.keys["alice"])
    monkeypatch.setattr(audit_log, "utc_timestamp", lambda now=None: "2020-01-02T00:00:00.000000Z")
    setup.append(setup.decision(update(approvals=[ev])))
    assert run(setup).ok
    monkeypatch.setattr(audit_log, "utc_timestamp", lambda now=None: "2020-01-04T00:00:00.000000Z")
    (late,) = setup.append(setup.decision(update(approvals=[ev])))
    assert errors(run(setup))[0] == (f"bad-approval seq {late}: refs/heads/main: approval by alice does not count: "
                                    "expired at 2020-01-03T00:00:00Z, before the push")
    monkeypatch.setattr(audit_log, "utc_timestamp", lambda now=None: "2019-12-31T00:00:00.000000Z")
    (early,) = setup.append(setup.decision(update(approvals=[ev])))
    assert f"bad-approval seq {early}: refs/heads/main: approval by alice does not count: created at " \
           "2020-01-01T00:00:00Z, after the push" in errors(run(setup))


def test_key_not_yet_trusted_at_the_records_time(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    setup.write_signers({"alice": 'valid-after="20300101Z"'})
    setup.append(setup.decision(update(approvals=[approved(setup)])))
    text = "\n".join(errors(run(setup)))
    assert "signature not accepted at" in text and "key valid only from 2030-01-01" in text


def test_missing_trust_store_and_policy_are_reported_not_skipped(setup: Setup, tmp_path: Path) -> None:
    (first,) = setup.append(setup.decision(update(approvals=[approved(setup)])))
    old_trust = setup.trust_sha256
    setup.signers.write_text(setup.signers.read_text() + "# rotated\n")  # the store in force changes
    report = run(setup)
    assert errors(report) == [f"trust-store-missing seq {first}: refs/heads/main: approvals under trust store "
                              f"{old_trust}, which was not given: cannot re-verify"]
    archive = tmp_path / "trust-archive"
    archive.mkdir()
    (archive / "2026-11.allowed_signers").write_text(setup.signers.read_text().replace("# rotated\n", ""))
    assert run(setup, dirs=[archive]).ok
    old_config = setup.config_sha256
    setup.config.write_text(setup.config.read_text() + "# edited\n")
    assert errors(run(setup, dirs=[archive])) == [
        f"policy-missing seq {first}: allow under policy {old_config}, which was not given: cannot re-verify"]


def test_approvals_without_trust_store_hash(setup: Setup) -> None:
    setup.append(setup.decision(update(approvals=[approved(setup)]), trust=False))
    assert "approvals recorded without trust_store_sha256" in "\n".join(errors(run(setup)))


def test_statement_omitted_cannot_be_reverified(setup: Setup) -> None:
    ev = approved(setup)
    del ev["statement"]
    ev["statement_omitted"] = "300000 bytes; see commit 3333"
    setup.append(setup.decision(update(approvals=[ev])))
    assert "the statement is not in the record (300000 bytes; see commit 3333); it cannot be re-verified offline" \
        in "\n".join(errors(run(setup)))


def test_outcome_pairing(setup: Setup) -> None:
    landed = update(approvals=[approved(setup)])
    sneaky = update(old=NEW, new="4" * 40)
    refused = update(old=NEW, new="5" * 40, decision="deny")
    seqs = setup.append(
        setup.decision(landed),  # 0: no outcome -> warning
        setup.outcome(sneaky),  # 1: no decision at all -> error
        setup.decision(refused, decision="deny"),  # 2
        setup.outcome(refused),  # 3: only a refused decision -> error
    )
    report = run(setup)
    assert errors(report) == [
        f"outcome-without-decision seq {seqs[1]}: refs/heads/main {NEW}..{'4' * 40} was updated without a decision "
        "that allowed it",
        f"outcome-without-decision seq {seqs[3]}: refs/heads/main {NEW}..{'5' * 40} was updated without a decision "
        "that allowed it (only a refused decision matches)",
    ]
    assert [(w.code, w.seq) for w in report.warnings] == [("not-applied", seqs[0])]


def test_monitor_mode_denials_are_warnings(setup: Setup) -> None:
    setup.append(setup.decision(update(decision="deny"), decision="deny", blocked=False))
    report = run(setup)
    assert report.ok
    assert [w.code for w in report.warnings] == ["monitor-deny", "not-applied"]


def test_break_glass_by_a_non_member_is_flagged(setup: Setup) -> None:
    (seq,) = setup.append(setup.decision(update(decision="deny"), pusher="alice", decision="break-glass",
                                         blocked=False, break_glass={"by": "alice", "reason": "prod down"}))
    report = run(setup)
    assert errors(report) == [f"unjustified seq {seq}: break-glass by 'alice', who is not in the policy's "
                              "break_glass list (or is a deploy key)"]
    assert [(b.seq, b.by, b.reviewed) for b in report.break_glass] == [(seq, "alice", False)]


def test_bad_trust_store_file_is_an_error(setup: Setup, tmp_path: Path) -> None:
    bad = tmp_path / "bad_signers"
    bad.write_text("alice not-a-key\n")
    with pytest.raises(AuditError, match="trust store .*bad_signers"):
        load_trust_stores([bad])


def test_store_keys_are_content_hashes(setup: Setup) -> None:
    stores = load_trust_stores([setup.signers])
    assert list(stores) == [hashlib.sha256(setup.signers.read_bytes()).hexdigest()]


def test_break_glass_reviewed_by_a_stored_approval_that_reverifies(setup: Setup) -> None:
    bg, _, review = setup.append(break_glass(setup), setup.outcome(), approval_push(setup, "alice"))
    report = run(setup)
    assert report.ok, errors(report)
    (entry,) = report.break_glass
    assert (entry.seq, entry.by, entry.reason, entry.reviewed) == (bg, "dave", "prod is down", True)
    assert [(seq, person) for seq, person, _ in entry.reviews] == [(review, "alice")]


def test_a_forged_stored_approval_does_not_review_break_glass(setup: Setup) -> None:
    forged = approval_push(setup, "alice", edit=lambda d: d.replace(b'"note": ""', b'"note": "ok"'))
    bg, _, review = setup.append(break_glass(setup), setup.outcome(), forged)
    report = run(setup)
    (error,) = report.errors
    assert error.code == "bad-approval" and error.seq == review
    assert ": stored approval: signature not accepted at " in error.message
    assert [b.reviewed for b in report.break_glass] == [False]
    assert ("break-glass-unreviewed", bg) in [(w.code, w.seq) for w in report.warnings]


def test_historical_store_with_revocations_from_a_trust_dir(setup: Setup, tmp_path: Path) -> None:
    from gatekeeper.trust.allowed_signers import AllowedSigners

    bob_pub = setup.keys["bob"].with_name("bob.pub").read_bytes()
    store = AllowedSigners.from_bytes(setup.signers.read_bytes(), revoked=bob_pub)
    event = setup.decision(update(approvals=[approved(setup, "alice")]),
                           update(ref="refs/heads/release/1", approvals=[
                               evidence(statement("bob", ref="refs/heads/release/1"), setup.keys["bob"])]))
    event["trust_store_sha256"] = store.sha256()  # what the hook records when revoked_keys is configured
    (seq,) = setup.append(event)
    assert [i.code for i in run(setup).errors] == ["trust-store-missing"] * 2
    pair = tmp_path / "archive" / "2026-10"
    pair.mkdir(parents=True)
    (pair / "allowed_signers").write_bytes(setup.signers.read_bytes())
    (pair / "revoked_keys").write_bytes(bob_pub)
    text = errors(run(setup, dirs=[pair.parent]))
    assert len(text) == 2 and all(f"seq {seq}: refs/heads/release/1: " in t for t in text)
    assert "approval by bob does not count: signature not accepted at " in text[0] and "revoked" in text[0]


def test_cli_verify_approvals_needs_a_policy(setup: Setup) -> None:
    from .test_breakglass import gk

    setup.append(setup.decision(update(approvals=[approved(setup)])), setup.outcome())
    proc = gk("audit", "verify", "--log", str(setup.log_path), "--approvals")
    assert proc.returncode == 2  # a missing option is a usage error (issue 11)
    assert "gatekeeper audit: error: --approvals needs the policy in force" in proc.stderr
    proc = gk("audit", "verify", "--log", str(setup.log_path), "--approvals", "--policy", str(setup.config),
              "--allowed-signers", str(setup.signers))
    assert "APPROVALS OK: 1 allow(s) re-verified" in proc.stdout
    # Unsealed (no signing key in this hand-built log) is the structural part's business, not ours.
    assert "Traceback" not in proc.stderr


def test_allowed_updates_of_a_break_glass_push_must_stand_on_their_own(setup: Setup) -> None:
    bad = approved(setup, "dave")  # the pusher's own approval
    event = break_glass(setup, update(decision="deny"), update(ref="refs/heads/release/1", approvals=[bad]))
    (seq,) = setup.append(event)
    text = errors(run(setup))
    assert text[0] == (f"bad-approval seq {seq}: refs/heads/release/1: approval by dave does not count: for "
                       "refs/heads/main, not refs/heads/release/1")
    assert f"unjustified seq {seq}: refs/heads/release/1: rule model-code needs 1 approval(s), 0 re-verified (none)" \
        in text


def test_hostile_evidence_shapes_are_errors_not_crashes(setup: Setup) -> None:
    upd = update(approvals=[approved(setup)])
    upd["approvals"] = [1, {"statement": 5}, {"statement": "{}", "signature": "x", "person": "alice"},
                        {"statement": "\u00e9"}]
    (seq,) = setup.append(setup.decision(upd))
    assert errors(run(setup)) == [
        f"bad-approval seq {seq}: refs/heads/main: recorded approval: the approval evidence is not an object",
        f"bad-approval seq {seq}: refs/heads/main: recorded approval: the statement is not in the record; it cannot "
        "be re-verified offline",
        f"bad-approval seq {seq}: refs/heads/main: recorded approval: the recorded statement is malformed: the "
        "statement has the wrong fields (missing type, repository, ref, approver, base, head, created, expires, "
        "nonce, note, changes)",
        f"bad-approval seq {seq}: refs/heads/main: recorded approval: the recorded statement is not ASCII",
        f"unjustified seq {seq}: refs/heads/main: rule model-code needs 1 approval(s), 0 re-verified (none)",
    ]


def test_a_history_rewrite_needs_the_history_requirement(setup: Setup) -> None:
    (seq,) = setup.append(setup.decision(update(kind="force", approvals=[approved(setup)])))
    text = errors(run(setup))
    assert text[0] == (f"unjustified seq {seq}: refs/heads/main: a force of a protected ref without the "
                       "protected-ref-history requirement")
    # alice's approval was counted for model-code, not for the rewrite: the rewrite stays unapproved.
    assert text[1:] == [f"unjustified seq {seq}: refs/heads/main: rule protected-ref-history needs 1 approval(s), "
                        "0 re-verified (none)"]


def test_break_glass_by_a_deploy_key_is_flagged(setup: Setup) -> None:
    event = break_glass(setup)
    event["pusher"] = {"user": "dave", "source": "REMOTE_USER", "deploy_key": True}
    (seq,) = setup.append(event)
    assert errors(run(setup)) == [f"unjustified seq {seq}: break-glass by 'dave', who is not in the policy's "
                                  "break_glass list (or is a deploy key)"]


def test_expiry_while_the_hook_ran_is_tolerated_up_to_its_deadline(setup: Setup,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # The hook judges approvals when it starts and appends the record when it ends (limits.timeout_seconds, 50 s).
    created = datetime(2020, 1, 1, tzinfo=timezone.utc)
    setup.write_signers({"alice": 'valid-before="20200102000000Z"'})
    ev = evidence(statement("alice", created=created, expires_in=timedelta(days=1)), setup.keys["alice"])
    monkeypatch.setattr(audit_log, "utc_timestamp", lambda now=None: "2020-01-02T00:00:40.000000Z")
    setup.append(setup.decision(update(approvals=[ev])))
    assert run(setup).ok
    monkeypatch.setattr(audit_log, "utc_timestamp", lambda now=None: "2020-01-02T00:01:00.000000Z")
    (late,) = setup.append(setup.decision(update(approvals=[ev])))
    text = errors(run(setup))
    assert text[0] == (f"bad-approval seq {late}: refs/heads/main: approval by alice does not count: expired at "
                       "2020-01-02T00:00:00Z, before the push")
