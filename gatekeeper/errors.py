"""The one exception family of gatekeeper.

Every error a user can cause or fix is a :class:`GatekeeperError` with a message (what happened) and a hint (what to
do). The CLI turns it into ``gatekeeper: error: ...`` plus ``hint: ...`` and exit status 1; the hook turns it into a
refused push. Anything else that escapes is a bug: the CLI says so (exit 3) and the hook still refuses the push.

Errors that belong to one subsystem are defined here only when more than one module raises or catches them; otherwise
they live next to the code that raises them (dulwich's rule).
"""

from __future__ import annotations


class GatekeeperError(Exception):
    """An expected, explainable failure. ``hint`` tells the user what to do next."""

    default_hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def __str__(self) -> str:
        return self.message


class ConfigError(GatekeeperError):
    """The server-side policy is missing, unreadable or invalid. ``problems`` holds one line per finding."""

    default_hint = "run: gatekeeper policy lint --config FILE"

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = list(problems or [])


class GitAccessError(GatekeeperError):
    """The repository or an object in it could not be read."""


class InputError(GatekeeperError):
    """Malformed input from git or the platform (hook stdin, environment)."""


class AuditError(GatekeeperError):
    """The audit log could not be written durably, or failed verification."""


class SignatureError(GatekeeperError):
    """Base for signature problems (dulwich's split): never caught as a whole where the difference matters."""


class BadSignature(SignatureError):
    """The signature is malformed or does not verify."""


class UntrustedSignature(SignatureError):
    """The signature verifies, but not under a key trusted for this purpose, person and time."""


class ScanError(GatekeeperError):
    """Content could not be scanned (callers turn this into an ``unscannable`` finding)."""
