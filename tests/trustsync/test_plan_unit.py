"""The pure part: which forge key becomes which line (no network)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gatekeeper.hosting.trustsync import AccountKeys, ForgeKey, SyncPlan, plan_trust_store, refuse_large_drop

from .conftest import NAMESPACE, Keys

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)


def _plan(keys: Keys, expires: str | None, usage: str | None = "signing", kind: str = "gitlab") -> SyncPlan:
    fetched = {"alice": AccountKeys("alice", (ForgeKey("1", keys.pub("unit-alice"), "t", usage, expires),))}
    return plan_trust_store({"alice": ("alice",)}, fetched, forge=f"{kind} https://forge", kind=kind,
                            namespace=NAMESPACE, now=NOW)


@pytest.mark.parametrize(("expires", "valid_before"), [
    ("2026-11-25T12:00:01Z", "20261125120000Z"),  # the last second is exactly now: still valid
    ("2026-11-25T12:00:01.999Z", "20261125120000Z"),  # fractions are floored, never extended
    ("2026-11-25T14:00:01+02:00", "20261125120000Z"),  # offsets converted to UTC
    ("2027-01-01", "20261231235959Z"),  # a bare date: the start of that day in UTC
    (None, None),
])
def test_expiry_becomes_an_inclusive_utc_valid_before(keys: Keys, expires: str | None,
                                                      valid_before: str | None) -> None:
    plan = _plan(keys, expires)
    assert plan.skipped == ()
    line = plan.render().decode().splitlines()[-1]
    options = f'namespaces="{NAMESPACE}"' + (f',valid-before="{valid_before}"' if valid_before else "")
    assert line == f"alice {options} {' '.join(keys.pub('unit-alice').split()[:2])}"


@pytest.mark.parametrize(("expires", "reason"), [
    ("2026-11-25T12:00:00Z", "expired at 2026-11-25T12:00:00Z"),
    ("yesterday", "expires_at 'yesterday' is not a date"),
])
def test_expired_or_unreadable_expiry_is_skipped(keys: Keys, expires: str, reason: str) -> None:
    plan = _plan(keys, expires)
    assert [s.reason for s in plan.skipped] == [reason]
    assert plan.missing == {"alice": ("gitlab user 'alice' has no signing key (1 key skipped)",)}


@pytest.mark.parametrize(("usage", "kind", "reason"), [
    ("auth", "gitlab", "usage_type 'auth' is not for signing"),
    (None, "gitlab", "no usage_type (GitLab before 15.7 has no signing keys)"),
    ("deploy", "gitea", "key_type 'deploy' is not a user key"),
    (None, "gitea", "key_type 'missing' is not a user key"),
])
def test_usage_filters(keys: Keys, usage: str | None, kind: str, reason: str) -> None:
    assert [s.reason for s in _plan(keys, None, usage, kind).skipped] == [reason]


def test_one_key_on_two_accounts_of_one_person_is_one_line_with_the_longest_validity(keys: Keys) -> None:
    text = keys.pub("unit-alice")
    fetched = {"a1": AccountKeys("a1", (ForgeKey("1", text, "", "signing", "2027-01-01T00:00:00Z"),)),
               "a2": AccountKeys("a2", (ForgeKey("2", text, "", "signing", None),))}
    plan = plan_trust_store({"alice": ("a1", "a2")}, fetched, forge="gitlab x", kind="gitlab", namespace=NAMESPACE,
                            now=NOW)
    assert [(k.account, k.valid_before) for k in plan.keys] == [("a2", None)]
    assert plan.conflicts == ()


def test_drop_guard_counts_people_of_the_current_policy_only(keys: Keys) -> None:
    plan = _plan(keys, None)  # alice keeps a key
    b64 = " ".join(keys.pub("unit-bob").split()[:2])
    previous = f"alice {' '.join(keys.pub('unit-alice').split()[:2])}\nbob {b64}\n".encode()
    # bob is not in this plan's policy: his removal is the policy's decision.
    assert refuse_large_drop(previous, plan, max_drop_percent=0) is None
    assert refuse_large_drop(None, plan, max_drop_percent=0) is None
