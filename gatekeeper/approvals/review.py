"""What a clone can know about a change before it reaches the server: the ref update as the hook will analyse it, and
the content detectors' findings (shown to reviewers by ``approve``, and turned into requirements by ``check``)."""

from __future__ import annotations

from pathlib import Path

from gatekeeper.push.analysis import RefAnalysis
from gatekeeper.push.gitrepo import Repo
from gatekeeper.model import ObjectId, RefUpdate, UpdateKind

__all__ = ["client_analysis", "finding_lines", "remote_base", "scan"]

MAX_FINDINGS_SHOWN = 20


def client_analysis(repo: Repo, policy: object, *, base: ObjectId | None, head: ObjectId, ref: str,
                    note: str) -> RefAnalysis:
    """``base..head`` as the hook sees a push of ``head`` to ``ref`` whose current tip (or merge-base) is ``base``."""
    null = ObjectId(repo.null_id)
    if base is None:
        kind = UpdateKind.CREATE
    elif base == head:
        kind = UpdateKind.NOOP
    else:
        kind = UpdateKind.FAST_FORWARD if repo.is_ancestor(base, head) else UpdateKind.FORCE
    changes = tuple(repo.diff_trees(repo.commit_tree(base) if base else None, repo.commit_tree(head)))
    return RefAnalysis(
        update=RefUpdate(base or null, head, ref), kind=kind,
        protected=bool(policy.is_protected_ref(ref)),  # type: ignore[attr-defined]
        base=base, base_note=note, new_target=head, changes=changes,
    )


def scan(repo: Repo, policy: object, analysis: RefAnalysis) -> object:
    """The content report for one analysed update (no verdict cache: a clone is not the server)."""
    from gatekeeper.push.content_gate import scan_push

    return scan_push(repo, policy, [analysis], cache_dir=None)


def finding_lines(report: object) -> list[str]:
    findings = [f for rc in report.refs.values() for f in rc.findings]  # type: ignore[attr-defined]
    lines = [f"  {f.verdict.value}: {f.path}: {f.message}" for f in findings[:MAX_FINDINGS_SHOWN]]
    if len(findings) > MAX_FINDINGS_SHOWN:
        lines.append(f"  ... and {len(findings) - MAX_FINDINGS_SHOWN} more findings")
    return lines


def remote_base(repo: Repo, workdir: Path, remote: str, ref: str, head: ObjectId, *,
                default_branch: str) -> ObjectId | None:
    """The base the server will diff against: the remote's current tip of ``ref``; for a ref that does not exist
    there yet, its merge-base with the default branch (as the hook computes it for a new protected ref); without a
    default branch there either (an empty repository), None: the empty tree, as the hook uses."""
    from gatekeeper.approvals.create import ApproveError, git

    listed = git(workdir, "ls-remote", "--refs", remote, ref, default_branch).split()
    if ref.encode() in listed:
        git(workdir, "fetch", "--quiet", remote, ref)
        return repo.resolve("FETCH_HEAD")
    if default_branch.encode() not in listed:
        print(f"{ref} is new on {remote} and {default_branch} does not exist there: comparing with the empty tree, "
              "as the server will")
        return None
    git(workdir, "fetch", "--quiet", remote, default_branch)
    base = repo.merge_base(head, repo.resolve("FETCH_HEAD"))
    if base is None:
        raise ApproveError(f"{ref} is new and shares no history with {default_branch}", hint="pass --base REV")
    print(f"{ref} is new on {remote}: comparing with its merge-base with {default_branch} ({base[:12]}), "
          "as the server will")
    return base
