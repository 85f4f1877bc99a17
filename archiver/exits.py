"""Exit codes and one-line failures: a leaf both the CLI and its commands import.

Kept apart from ``cli`` so commands never import the composition root (which
imports them). Exit codes (contract): 0 success; 1 a fatal error (one line);
2 bad usage or configuration; 3 finished but some recordings failed
permanently; 4 ``get``: no such call; 5 ``verify``/``get``: missing or corrupt
objects, ``reconcile``: a recording missing from the archive; 130 stopped by a
signal.
"""

from __future__ import annotations

import sys
from enum import IntEnum

from archiver.logs import redact


class ExitCode(IntEnum):
    """What the process's exit status tells a script."""

    OK = 0
    FATAL = 1
    USAGE = 2
    FAILED_RECORDINGS = 3
    NOT_FOUND = 4
    CORRUPT = 5
    INTERRUPTED = 130


def fail(code: int, message: str) -> int:
    """Print ``archiver: message`` (secrets redacted) on stderr, one line; return ``code``."""
    line = " ".join(redact(message).split())
    print(f"archiver: {line}", file=sys.stderr)
    return int(code)


def warn(message: str) -> None:
    """Print ``archiver: warning: message`` (secrets redacted) on stderr, one line."""
    line = " ".join(redact(message).split())
    print(f"archiver: warning: {line}", file=sys.stderr)
