"""The server hooks: pre-receive decides and records, post-receive records what actually happened.

pre-receive, in order (DESIGN.md "Data flow of one push"):

1. policy from the server-side config (never from pushed content);
2. who pushes, from the platform;
3. the ref updates from stdin, validated;
4. per protected ref, the net change set (quarantine visible through FROM_ENV);
5. the decision (pure);
6. a chained pre-existing hook, if the decision allows;
7. one audit record, durably, *before* exiting 0 -- if it cannot be written the push is refused.

Every failure on the way (bad config, bad input, unreadable repository, timeout, a bug) refuses the push with a
one-line reason, and is itself recorded when a log can be found (the install records a fallback log path in the shim
for exactly that case).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gatekeeper import __version__
from gatekeeper.push.deadline import DeadlineExceeded, hard_deadline, hard_grace, soft_deadline
from gatekeeper.errors import AuditError, GatekeeperError
from gatekeeper.model import Finding, RefUpdate, display_path

if TYPE_CHECKING:  # loaded inside the functions that use them: a refused config must not pay for the whole gate
    from gatekeeper.approvals.evaluate import Approvals
    from gatekeeper.policy.config import Policy
    from gatekeeper.policy.outcome_cache import OutcomeSettings
    from gatekeeper.push.gate import Decision

DEFAULT_TIMEOUT_S = 50  # below GitLab's 55 s web-operation deadline; git itself has no hook timeout
MAX_PATHS_RECORDED = 1000
MAX_FINDINGS_RECORDED = 200


@dataclass
class HookResult:
    exit_code: int
    lines: list[str]


def new_push_id() -> str:
    """A random (version 4) UUID in its usual text form, exactly what ``str(uuid.uuid4())`` gives.

    Built here because importing :mod:`uuid` (and the :mod:`platform` it pulls in) costs every push more than the
    sixteen random bytes do.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def run_pre_receive(
    stdin: bytes,
    env: Mapping[str, str],
    *,
    config: Path,
    fallback_log: Path | None = None,
    chain: Path | None = None,
) -> HookResult:
    """Decide on one push. Returns the exit code and the lines to show the pusher."""
    push_id = new_push_id()
    event: dict[str, object] = {
        "type": "push.decision",
        "push_id": push_id,
        "gate_version": __version__,
        "repo": None,
        "pusher": None,
        "protocol": None,
        # Refined by _decide; on an error before that (a broken policy, say) the record still names what was tried.
        "updates": attempted_updates(stdin),
    }
    policy: Policy | None = None
    # Known before anything can fail, so that error paths carry GitLab's GL-HOOK-ERR: prefix too.
    prefix = env_message_prefix(env)
    try:
        from gatekeeper.policy.config import load_policy
        from gatekeeper.policy.digest_cache import cache_dir_for

        policy = load_policy(config, cache_dir=cache_dir_for(fallback_log))
        _remember_outcome_settings(config, policy, fallback_log)
        event["config_sha256"] = policy.source_sha256
        event["mode"] = policy.mode
        timeout = float(getattr(policy.limits, "timeout_seconds", DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 -- fail closed on anything, bugs included
        return _refuse_with_error(exc, event, policy, fallback_log, prefix)
    # The soft deadline interrupts Python code anywhere (no detector can catch it); the hard one kills the hook from a
    # watchdog process if a call into C outlives the soft one, and records the refusal there.
    killed = _KilledRecorder(event, policy, fallback_log, prefix, stdin, timeout, env)
    with hard_deadline(timeout + hard_grace(timeout), killed):
        try:
            with soft_deadline(timeout):
                result = _decide(stdin, env, policy, event, chain)
            prefix = result[1] or prefix
            decision_lines, blocked, after_record = result[0], result[2], result[3]
        except (Exception, DeadlineExceeded) as exc:  # noqa: BLE001 -- fail closed on anything, bugs included
            return _refuse_with_error(exc, event, policy, fallback_log, prefix)
        # Record before exiting 0: an accepted push always has a durable decision record. The query index is brought
        # up to date by the post-receive that follows an accepted push (it indexes this record with its own), so only
        # a refusal refreshes it here; queries catch up by themselves in any case.
        try:
            seq = _append(event, policy, fallback_log, refresh_index=blocked)
        except Exception as exc:  # noqa: BLE001
            return HookResult(1, _prefixed(prefix, _audit_failure_lines(exc)))
        # Then the approvals ledger (approvals stored, used up or withdrawn by this push). If that fails the push is
        # refused: the record then reads as a decision that was not applied.
        try:
            after_record(seq)
        except Exception as exc:  # noqa: BLE001
            detail = exc.message if isinstance(exc, GatekeeperError) else f"{type(exc).__name__}: {exc}"
            return HookResult(1, _prefixed(prefix, [
                f"gatekeeper: push REFUSED (audit record #{seq}): the approvals ledger could not be updated",
                f"  {detail}", "  hint: tell your gatekeeper admin; nothing of this push landed"]))
    lines = [line.replace("{AUDIT_SEQ}", str(seq)) for line in decision_lines]
    return HookResult(1 if blocked else 0, _prefixed(prefix, lines))


@dataclass
class _KilledRecorder:
    """Run by the watchdog after it killed a hook stuck past the hard deadline: the refusal record and message."""

    event: dict[str, object]
    policy: Policy | None
    fallback_log: Path | None
    prefix: str
    stdin: bytes
    timeout: float
    env: Mapping[str, str]

    def __call__(self) -> None:
        from gatekeeper.push.hookinput import parse_updates

        try:  # what the hook had not filled in yet when the watchdog was forked, best effort
            from gatekeeper.push.platform import detect_context

            assert self.policy is not None  # without a policy there is nothing more to fill in
            context = detect_context(self.env, platform=self.policy.platform)
            self.event["repo"] = repository_id(self.policy, context.repository, self.env)
            self.event["pusher"] = {"user": context.identity.user, "source": context.identity.source,
                                    "deploy_key": context.identity.is_deploy_key}
            self.event["updates"] = [_update_stub(u) for u in parse_updates(self.stdin)]
        except Exception:  # noqa: BLE001 -- the refusal is recorded even when the input was the problem
            pass
        exc = DeadlineExceeded(self.timeout)
        exc.message += f" and was killed {hard_grace(self.timeout):g} s later (stuck where it could not be interrupted)"
        result = _refuse_with_error(exc, self.event, self.policy, self.fallback_log, self.prefix)
        emit(result.lines, sys.stderr)


def _decide(
    stdin: bytes, env: Mapping[str, str], policy: Policy, event: dict[str, object], chain: Path | None,
) -> tuple[list[str], str, bool, Callable[[int], None]]:
    from gatekeeper.push.analysis import analyse_updates, resolve_server_symrefs
    from gatekeeper.approvals.evaluate import load_evaluator
    from gatekeeper.approvals.ledger import Ledger
    from gatekeeper.push.content_gate import content_requirements, refuse_malformed_trees, scan_push
    from gatekeeper.push.gate import decide
    from gatekeeper.push.gitrepo import Repo, read_push_options
    from gatekeeper.push.hookinput import parse_updates
    from gatekeeper.push.messages import render_decision
    from gatekeeper.push.platform import detect_context, message_prefix
    from gatekeeper.policy.trusted_files import refuse_exposed

    context = detect_context(env, platform=policy.platform)
    prefix = message_prefix(context.platform)
    event["pusher"] = {
        "user": context.identity.user,
        "source": context.identity.source,
        "deploy_key": context.identity.is_deploy_key,
    }
    event["protocol"] = context.protocol
    event["platform"] = context.platform
    event["repo"] = repository_id(policy, context.repository, env)
    if context.details:
        event["platform_details"] = dict(context.details)
    updates = parse_updates(stdin)
    event["updates"] = [_update_stub(u) for u in updates]
    options = read_push_options(env)
    break_glass = _break_glass_option(options)
    repo = Repo.open_for_hook(env)
    refuse_exposed(policy, repo.work_trees())  # before anything is judged by a policy a push may have written
    refuse_malformed_trees(repo)
    # A pushed name that is a symbolic ref on the server moves its target: everything below judges the target.
    updates, pushed_as = resolve_server_symrefs(repo, updates)
    analyses = analyse_updates(
        repo,
        updates,
        is_protected=policy.is_protected_ref,
        default_branch=policy.default_branch,
        max_changed_paths=int(policy.limits.max_changed_paths),
        pushed_as=pushed_as,
    )
    content = scan_push(repo, policy, analyses, cache_dir=_scan_cache_dir(policy))
    # Approvals: stored ones plus those pushed now; a bad, deleted or rewritten approval ref refuses the whole push.
    approvals = load_evaluator(repo, policy, updates, pusher=context.identity, repository=str(event["repo"]),
                               ledger=Ledger.for_repository(repo.path))
    decision = decide(
        policy,
        analyses,
        pusher=context.identity,
        approvals=approvals,
        break_glass_reason=break_glass,
        extra_requirements=lambda analysis: content_requirements(policy, content, analysis),
        blocking={ref: rc.blocking for ref, rc in content.refs.items() if rc.blocking},
    )
    if approvals.trust_store_sha256:
        event["trust_store_sha256"] = approvals.trust_store_sha256
    from gatekeeper.audit.archive import archive_inputs

    # Before the record names them: every decision stays re-verifiable without admins keeping old files.
    archive_inputs(Path(policy.audit.log), policy, approvals.trust_store_sha256)
    findings = [f for rc in content.refs.values() for f in rc.findings]
    if findings:
        event["findings"] = [_finding_record(f) for f in findings[:MAX_FINDINGS_RECORDED]]
        event["findings_total"] = len(findings)
    event["scan"] = {"blobs": content.blobs_scanned, "cache_hits": content.cache_hits}
    chained_failure = approvals.refusal
    if chained_failure is None and not decision.blocked and chain is not None:
        chained_failure = _run_chained(chain, stdin, env)
    event.update(_decision_fields(decision))
    _record_pushed_approvals(event, approvals)
    lands = not chained_failure and not decision.blocked
    from gatekeeper.approvals.lifecycle import ledger_finisher, record_lifecycle

    record_lifecycle(event, approvals, lands=lands)
    finish = ledger_finisher(approvals, lands=lands)
    if chained_failure:
        event["decision"] = "deny"
        event["blocked"] = True
        previous = event.get("reasons")
        event["reasons"] = [*(previous if isinstance(previous, list) else []), chained_failure]
        lines = [
            "gatekeeper: push REFUSED (audit record #{AUDIT_SEQ}): " + chained_failure,
        ]
        return lines, prefix, True, finish
    lines = render_decision(decision, audit_seq=None, pusher=context.identity.user,
                            is_protected=policy.is_protected_ref)
    lines[0] = lines[0] + " (audit record #{AUDIT_SEQ})"
    return lines, prefix, decision.blocked, finish


def _scan_cache_dir(policy: Policy) -> Path:
    # Outside the repository on purpose: objects written during pre-receive land in the quarantine and vanish.
    return Path(policy.audit.log).parent / "scan-cache"


def _finding_record(f: Finding) -> dict[str, object]:
    return {
        "verdict": f.verdict.value,
        "path": f.path,
        "detector": f.detector,
        "message": f.message,
        "evidence": list(f.evidence)[:10],
        "blob": f.blob_id,
    }


def repository_id(
    policy: Policy | OutcomeSettings | None, platform_repo: str | None, env: Mapping[str, str],
) -> str:
    """The id approvals bind to: the policy's ``repository``, else the platform's, else the repository folder."""
    if policy is not None and policy.repository:
        return policy.repository
    if platform_repo:
        return platform_repo
    from gatekeeper.push.gitrepo import hook_git_dir

    name = Path(os.path.abspath(hook_git_dir(env))).name
    return name[:-4] if name.endswith(".git") else name


def _break_glass_option(options: tuple[str, ...]) -> str | None:
    for option in options:
        key, sep, value = option.partition("=")
        if key == "gatekeeper.break-glass":
            return value if sep else ""
    return None


def _update_stub(update: RefUpdate) -> dict[str, object]:
    return {"ref": update.ref, "old": update.old, "new": update.new}


def attempted_updates(stdin: bytes, limit: int = 1000) -> list[dict[str, object]]:
    """The ref updates the pusher asked for, read leniently (never raises): for records written before, or instead
    of, the strict parse. Undecodable bytes stay as surrogates here; the audit writer escapes them."""
    updates: list[dict[str, object]] = []
    for line in stdin.splitlines()[:limit]:
        parts = line.split(b" ", 2)
        if len(parts) == 3:
            old, new, ref = (part.decode("utf-8", "surrogateescape") for part in parts)
            updates.append({"ref": ref, "old": old, "new": new})
    return updates


def _decision_fields(decision: Decision) -> dict[str, object]:
    updates = []
    for ref in decision.refs:
        a = ref.analysis
        seen: set[bytes] = set()
        for outcome in ref.outcomes:
            seen.update(change.path for change in outcome.requirement.changes)
        # Record the first paths in canonical order (display form), and how many there were in all.
        paths = [display_path(p) for p in sorted(seen)[:MAX_PATHS_RECORDED]]
        entry: dict[str, object] = {
            "ref": a.update.ref,
            "old": a.update.old,
            "new": a.update.new,
            "kind": a.kind.value,
            "protected": a.protected,
            "decision": "allow" if ref.allowed else "deny",
            "rules": [o.requirement.rule for o in ref.outcomes],
            "paths": paths,
            "paths_total": len(seen),
            "reasons": list(ref.reasons),
        }
        if a.protected and a.base_note:
            entry["base"] = a.base
            entry["base_note"] = a.base_note
        if a.pushed_as:
            entry["pushed_as"] = a.pushed_as
        if a.shadows:
            entry["shadows"] = a.shadows
        missing = [
            {"rule": o.requirement.rule, "needed": o.requirement.approvals, "have": len(o.result.approvers),
             "from": list(o.requirement.reviewer_spec), "notes": list(o.result.notes)}
            for o in ref.outcomes if not o.satisfied
        ]
        if missing:
            entry["missing"] = missing
        # Each used approval names the rule it counted for: `audit verify --approvals` re-checks count per rule.
        used = [{**u, "rule": o.requirement.rule} for o in ref.outcomes for u in o.result.used]
        if used:
            entry["approvals"] = used
        updates.append(entry)
    fields: dict[str, object] = {
        "decision": decision.verdict,
        "blocked": decision.blocked,
        "reasons": list(decision.reasons),
        "updates": updates,
    }
    if decision.break_glass:
        fields["break_glass"] = dict(decision.break_glass)
    return fields


def _record_pushed_approvals(event: dict[str, object], approvals: Approvals) -> None:
    """Approval refs created by this push carry their evidence (statement, signature, signer) in their update entry,
    so an auditor can tell from the log alone when a break-glass change was approved after the fact."""
    pushed = {e["ref"]: e for e in approvals.pushed_evidence()}
    updates = event.get("updates")
    if not pushed or not isinstance(updates, list):
        return
    for entry in updates:
        evidence = pushed.get(entry.get("ref"))
        if evidence is not None and entry.get("new") == evidence.get("commit"):
            entry["approval"] = evidence


def _run_chained(chain: Path, stdin: bytes, env: Mapping[str, str]) -> str | None:
    """Run the hook that was there before install; it must pass too. Returns a reason if it refused."""
    import subprocess  # by need: most repositories chain nothing

    if not os.access(chain, os.X_OK):
        return f"the chained hook {chain} is not executable"
    try:
        # Output goes straight to the pusher, as it did before the gate was installed.
        proc = subprocess.run([str(chain)], input=stdin, env=dict(env), stdout=sys.stderr, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the chained hook {chain.name} could not run: {exc}"
    if proc.returncode != 0:
        return f"the chained hook {chain.name} refused the push (exit {proc.returncode})"
    return None


def _append(event: dict[str, object], policy: Policy | OutcomeSettings | None, fallback_log: Path | None, *,
            refresh_index: bool = True) -> int:
    from gatekeeper.audit.log import AuditLog

    origin = None  # without a configured one the log keeps its own (a broken policy must not change it)
    if policy is not None:
        log_path = Path(policy.audit.log)
        key: Path | None = policy.audit.signing_key
        origin = policy.audit.origin
    elif fallback_log is not None:
        log_path, key = fallback_log, None
    else:
        raise AuditError("no audit log is configured and the install recorded no fallback log")
    signing_key = Path(key) if key else log_path.parent / "audit-signing.key"
    log = AuditLog(log_path, signing_key=signing_key if signing_key.exists() else None, origin=origin)
    seq = log.append(event)["seq"]
    if not isinstance(seq, int):  # the log numbers its records; anything else is a bug, and refuses the push
        raise TypeError(f"the audit log returned a record without a sequence number ({seq!r})")
    if refresh_index:
        from gatekeeper.audit.indexer import refresh_in_background

        refresh_in_background(log_path)  # off the push's path: the query index stays current
    return seq


def _decision_push_id(
    event: dict[str, object], policy: Policy | OutcomeSettings | None, fallback_log: Path | None,
) -> str | None:
    """The push_id of the decision this outcome follows: git gives the two hooks no shared value, so the decision is
    found in the log's newest records by repository, pusher and the exact (ref, old, new) triples that moved."""
    try:  # pairing is a courtesy to auditors: it must never cost the outcome record itself
        from gatekeeper.audit.pairing import find_decision

        log_path = Path(policy.audit.log) if policy is not None else fallback_log
        if log_path is None:
            return None
        pusher = event.get("pusher")
        user = pusher.get("user") if isinstance(pusher, dict) else None
        updates = event.get("updates")
        return find_decision(log_path, repo=event.get("repo"), user=user,
                             updates=updates if isinstance(updates, list) else None)
    except Exception:  # noqa: BLE001
        return None


def audit_origin() -> str:
    """The default name of a new audit signing key (and so of the log's checkpoints, unless ``audit.origin`` is set):
    fixed when the key is created, so renaming the host later changes nothing."""
    import socket

    return f"{socket.gethostname()}/gatekeeper"


def _refuse_with_error(
    exc: BaseException, event: dict[str, object], policy: Policy | None, fallback_log: Path | None, prefix: str,
) -> HookResult:
    if isinstance(exc, (GatekeeperError, DeadlineExceeded)):
        summary, hint = exc.message, exc.hint
        problems = getattr(exc, "problems", [])
        if problems:
            summary = f"{summary}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        kind = type(exc).__name__
    else:
        summary = f"internal error ({type(exc).__name__}); this is a bug in gatekeeper"
        hint = "tell your gatekeeper admin; the details are in the audit record"
        kind = "internal"
    import traceback  # by need: only the error path formats a traceback

    event["decision"] = "error"
    event["blocked"] = True
    event["reasons"] = [summary]
    event["error"] = {
        "type": kind,
        "message": str(exc)[:2000],
        "detail": "".join(traceback.format_exception(exc))[-8000:],
    }
    seq: int | None
    try:
        seq = _append(event, policy, fallback_log)
    except Exception:  # noqa: BLE001 -- the push is refused anyway; say that it was not recorded
        seq = None
    from gatekeeper.push.messages import render_error

    return HookResult(1, _prefixed(prefix, render_error(summary, hint=hint, audit_seq=seq)))


def _audit_failure_lines(exc: BaseException) -> list[str]:
    detail = exc.message if isinstance(exc, GatekeeperError) else f"{type(exc).__name__}: {exc}"
    return [
        "gatekeeper: push REFUSED: the decision could not be written to the audit log",
        f"  {detail}",
        "  hint: tell your gatekeeper admin (disk full or log not writable?); no push lands unrecorded",
    ]


def _prefixed(prefix: str, lines: list[str]) -> list[str]:
    # Split embedded newlines (an exception message, a foreign hook's reason): every physical line the pusher sees
    # must carry the prefix, or GitLab's web UI drops it.
    return [prefix + part for line in lines for part in line.split("\n")]


def env_message_prefix(env: Mapping[str, str]) -> str:
    """The message prefix from the environment alone (before the policy is loaded): GitLab's if any GitLab variable
    is present (gitolite's ``GL_USER``/``GL_REPO`` are not GitLab's)."""
    from gatekeeper.push.platform import GITLAB_MARKERS, message_prefix

    return message_prefix("gitlab") if any(env.get(name) for name in GITLAB_MARKERS) else ""


def run_post_receive(stdin: bytes, env: Mapping[str, str], *, config: Path, fallback_log: Path | None) -> HookResult:
    """Record the ref updates that actually happened (post-receive lists only refs that were updated)."""
    from gatekeeper.push.hookinput import parse_updates

    event: dict[str, object] = {"type": "push.outcome", "push_id": None, "gate_version": __version__}
    policy: Policy | OutcomeSettings | None = None
    try:
        from gatekeeper.policy.outcome_cache import cache_dir_for, recall
        from gatekeeper.push.platform import detect_context

        # The settings the last full load of this exact policy file left behind, else the full load (which leaves them).
        policy = recall(config, cache_dir_for(fallback_log))
        if policy is None:
            from gatekeeper.policy.config import load_policy

            policy = _remember_outcome_settings(config, load_policy(config), fallback_log)
        context = detect_context(env, platform=policy.platform)
        event["repo"] = repository_id(policy, context.repository, env)
        event["pusher"] = {"user": context.identity.user, "source": context.identity.source,
                           "deploy_key": context.identity.is_deploy_key}
        event["updates"] = [_update_stub(u) for u in parse_updates(stdin)]
    except Exception as exc:  # noqa: BLE001 -- still record what we can: the refs already moved
        event["error"] = {"type": type(exc).__name__, "message": str(exc)[:2000]}
        event.setdefault("updates", attempted_updates(stdin))
        event["raw_input"] = stdin[:65536].decode("utf-8", "backslashreplace")
    event["push_id"] = _decision_push_id(event, policy, fallback_log)
    try:
        _append(event, policy, fallback_log)
    except Exception as exc:  # noqa: BLE001
        return HookResult(1, _prefixed(env_message_prefix(env), [
            f"gatekeeper: WARNING: the outcome of this push could not be recorded: {exc}"]))
    return HookResult(0, [])


def _remember_outcome_settings(config: Path, policy: Policy, fallback_log: Path | None) -> OutcomeSettings:
    """What post-receive needs from this validated policy, stored for the next post-receive (best effort)."""
    from gatekeeper.policy.outcome_cache import cache_dir_for, remember, settings_of

    settings = settings_of(policy)
    remember(config, policy.source_sha256, settings, cache_dir_for(fallback_log))
    return settings


def emit(lines: list[str], stream: TextIO) -> None:
    """One write, so the message reaches the client as one contiguous block."""
    if lines:
        stream.write("\n".join(lines) + "\n")
        stream.flush()
