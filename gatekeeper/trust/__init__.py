"""Who is trusted to sign: the SSHSIG verifier, ``allowed_signers`` parsing and KRL revocations."""
