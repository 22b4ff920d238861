"""The hook's deadline, enforced rather than requested.

Two layers, because one is not enough:

* :func:`soft_deadline` raises :class:`DeadlineExceeded` from a ``SIGALRM`` handler. It derives from
  ``BaseException`` on purpose: detectors fail closed with ``except Exception`` (a parser bug becomes an
  ``unscannable`` finding), and a deadline caught there would turn into a finding that ``scan.unscannable: review`` or
  ``mode: monitor`` lets through. The timer also re-fires every :data:`REFIRE_S` until disarmed, so even a stray
  ``except BaseException: pass`` cannot absorb it.
* :func:`hard_deadline` is the backstop for what a signal handler cannot interrupt: Python runs handlers between
  bytecodes only, so one long call into C (a regular expression over a huge buffer, a libgit2 diff) delays the soft
  deadline indefinitely. A forked watchdog process waits on a pipe; if the hook is still running ``grace`` seconds
  after the deadline, it SIGKILLs the hook (git then refuses the push: the hook died), writes the refusal record and
  tells the pusher. When the hook finishes normally the pipe closes and the watchdog exits at once.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

REFIRE_S = 0.25  # after the deadline, the alarm keeps firing at this interval until the hook disarms it
WATCHDOG_SELF_LIMIT_S = 30  # the watchdog's own recording must finish within this, or it dies (SIGALRM default)


class DeadlineExceeded(BaseException):
    """The hook ran out of time. Not an ``Exception``: only the hook's top level may catch it."""

    hint = "the push is too large to check in time; split it, or ask an admin to raise limits.timeout_seconds"

    def __init__(self, seconds: float) -> None:
        self.message = f"the gate did not finish within {seconds:g} s"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def hard_grace(seconds: float) -> float:
    """How long after the soft deadline the watchdog kills the hook: 10% of it, between 1 and 5 seconds."""
    return max(1.0, min(5.0, seconds * 0.1))


@contextmanager
def soft_deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`DeadlineExceeded` in the main thread once ``seconds`` have passed (and again every
    :data:`REFIRE_S` until the block is left)."""
    armed = [True]

    def _expired(signum: int, frame: FrameType | None) -> None:
        if armed[0]:
            raise DeadlineExceeded(seconds)

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001), REFIRE_S)
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def hard_deadline(seconds: float, on_kill: Callable[[], None]) -> Iterator[None]:
    """Kill this process if the block is still running after ``seconds``; then run ``on_kill`` in the watchdog.

    ``on_kill`` runs in the forked watchdog after the hook is dead (so any lock the hook held is released): it records
    the refusal and writes the pusher's message. It sees the hook's memory as it was when the block was entered.
    """
    parent = os.getpid()
    sys.stderr.flush()
    try:
        read_end, write_end = os.pipe()  # not inherited by exec'd children (O_CLOEXEC)
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            raise
    except OSError:  # no process to spare: the soft deadline still holds, and the push is checked as usual
        yield
        return
    if pid == 0:  # the watchdog
        code = 0
        try:
            os.close(write_end)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            ready, _, _ = select.select([read_end], [], [], seconds)
            if not ready:  # the hook is still running: nothing inside it could stop it
                os.kill(parent, signal.SIGKILL)
                signal.alarm(WATCHDOG_SELF_LIMIT_S)
                on_kill()
        except BaseException:  # noqa: BLE001 -- the watchdog must never return into the hook's code
            code = 1
        finally:
            os._exit(code)
    os.close(read_end)
    try:
        yield
    finally:
        os.close(write_end)  # EOF: the watchdog wakes and exits
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
