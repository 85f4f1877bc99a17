"""Who holds shared work: a process's owner token, and whether its process has ended.

A token is ``<run_id>-<pid>@<host>`` (the host name with anything but letters,
digits and ``-`` as ``_``, so the token fits in an object key segment). It names
both a run's job leases in the state and its marker in the storage.
"""

from __future__ import annotations

import os
import re
import socket

_NOT_HOST = re.compile(r"[^A-Za-z0-9-]")
# The owner tokens of the runs going on in this process: another token of this
# pid is a run that ended (two pipelines of one process, as in the tests, are
# both live, and neither takes what the other holds).
_LIVE: set[str] = set()


def _host() -> str:
    return _NOT_HOST.sub("_", socket.gethostname())[:63] or "_"


def owner_token(run_id: str) -> str:
    """This process's token for the run ``run_id`` (a plain hex id)."""
    return f"{run_id}-{os.getpid()}@{_host()}"


def mark_live(owner: str, live: bool) -> None:
    """Record that the run ``owner`` of this process started (True) or ended (False)."""
    if live:
        _LIVE.add(owner)
    else:
        _LIVE.discard(owner)


def holder_is_gone(owner: str) -> bool:
    """Whether the process behind ``owner`` has certainly ended.

    Knowable only for a process of this host: its pid no longer runs, or is
    this very process under another run that is not going on (a restarted
    container keeps its host name and often its pid). Anything else waits for
    its lease to run out.
    """
    run_and_pid, _, host = owner.partition("@")
    _, _, pid_text = run_and_pid.partition("-")
    if host != _host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it runs, as another user
    return False
