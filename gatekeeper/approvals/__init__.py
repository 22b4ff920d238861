"""Signed approvals: the two-person rule (statement, storage, signing, evaluation).

Modules: :mod:`.statement` (canonical form and strict parser), :mod:`.store` (approval refs, read through
:class:`gatekeeper.push.gitrepo.Repo`), :mod:`.sign` (``ssh-keygen -Y sign``), :mod:`.evaluate` (the gate's evaluator
and the append-only check of pushed approval refs), :mod:`.create` (what ``gatekeeper approve`` does in a clone).

Reading and checking an approval with stock tools (namespace: the policy's ``trust.namespace``, by default
``gatekeeper-approval@gatekeeper.dev``)::

    git fetch origin 'refs/gatekeeper/approvals/*:refs/gatekeeper/approvals/*'
    git show refs/gatekeeper/approvals/bob/<nonce>:approval.json
    git show refs/gatekeeper/approvals/bob/<nonce>:approval.json.sig > approval.json.sig
    git show refs/gatekeeper/approvals/bob/<nonce>:approval.json |
        ssh-keygen -Y verify -f allowed_signers -I bob -n gatekeeper-approval@gatekeeper.dev -s approval.json.sig

Nothing is imported here: the hook imports only :mod:`.evaluate` and what it needs.
"""
