"""What the reviewer sees before signing (``gatekeeper check``/``approve``): the protected change set per file, with
code diffs, key-path diffs of configs, facts about weight files, remote-code closures and the findings, each tied to
the requirement it triggers. :mod:`build` computes, :mod:`render` prints."""
