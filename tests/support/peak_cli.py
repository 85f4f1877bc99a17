"""Run the archiver CLI and write its own peak RSS to a file (a memory test's probe).

``python tests/support/peak_cli.py OUT ARGS...`` runs ``archiver ARGS...`` and at
exit writes the process's peak RSS since it started, in bytes, to ``OUT``: the
kernel's ``VmHWM`` of this program, which starts afresh at ``exec``. Not
``wait4``'s ``ru_maxrss``: Linux carries the parent's high-water mark over a
fork and exec into the child's, so a test process of 150 MiB (an archive just
generated) would hide any command smaller than itself.

The scratch file's page cache is set to ``PEAK_CACHE_KIB`` (default 1024 KiB):
at its own 16 MiB it fills as the file grows, whatever the code, until full, and
would hide what else grows between two small archives.
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

import archiver.retrieval.scratch as scratch


def _write_peak(out: str) -> None:
    status = Path("/proc/self/status").read_text(encoding="ascii")
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    Path(out).write_text(str(int(line.split()[1]) * 1024), encoding="ascii")


def main() -> int:
    """Run the CLI on ``sys.argv[2:]``; the peak goes to ``sys.argv[1]`` at exit."""
    scratch.CACHE_KIB = int(os.environ.get("PEAK_CACHE_KIB", "1024"))
    atexit.register(_write_peak, sys.argv.pop(1))
    sys.argv[0] = "archiver"
    from archiver.__main__ import main as cli_main  # noqa: PLC0415 - after the cache is set

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
