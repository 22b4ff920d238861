"""The push path: what runs inside ``pre-receive`` and ``post-receive``.

Data flows one way through it: ``hookinput`` (stdin) and ``platform`` (who pushes) -> ``gitrepo`` (the only pygit2
user) -> ``analysis`` (update kinds, net change sets) -> ``content_gate`` (which blobs the detectors read) -> ``gate``
(the pure decision) -> ``messages`` (what the pusher reads); ``hook`` orchestrates and fails closed. Nothing here
imports ``gatekeeper.hosting`` or the network stack.
"""
