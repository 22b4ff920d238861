"""The server-side policy: loading and validation (``config``), path matching (``pathmatch``), safe YAML (``yamlsafe``).

Kept empty on purpose: importing ``gatekeeper.policy.pathmatch`` must not pay for the whole loader.
"""
