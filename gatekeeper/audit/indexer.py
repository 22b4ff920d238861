"""Keeping the query index current as records are written, off the push's critical path (issue 12.6).

After the hook appends, :func:`refresh_in_background` forks a detached process that indexes the new lines; the hook
returns at once. Only the child imports the index code (sqlite3 and friends stay off the hook's import path). An
accepted push is followed by post-receive, whose refresh indexes the decision record with the outcome record, so
pre-receive refreshes only after a refusal: one detached indexer per push, not two. (Queries update the index before
they read it, so a refresh that never happens only costs the next query that catch-up.)
"""

from __future__ import annotations

import os
from pathlib import Path


def refresh_in_background(log: Path) -> None:
    """Bring the index up to date in a detached child process, so the push that just appended does not wait and the
    next query finds the index current (issue 12.6). Best effort: any failure only means the next query catches up.
    """
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        os.waitpid(pid, 0)  # the child only forks the worker and exits: a millisecond, and no zombie
        return
    try:  # the child: leave the hook's session and pipes (git waits for them to close), index, exit
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        # And every other descriptor the hook had: the deadline watchdog's pipe above all (the watchdog waits for it
        # to close, the hook waits for the watchdog, and an indexer that outlived the hard deadline got the finished
        # hook killed and a false refusal recorded), but also the log's lock and repository files.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        if os.fork():  # the grandchild is re-parented to init: nobody needs to reap it
            os._exit(0)
        from gatekeeper.audit.query import Index

        Index(Path(log)).update().close()
    except BaseException:  # noqa: BLE001 -- never return into the hook's code from the child
        pass
    os._exit(0)
