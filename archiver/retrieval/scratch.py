"""A scratch SQLite file per command: what a command must remember of every call, on disk.

``verify`` of the whole archive must remember something of every call line it
reads (its call, to find a second line of it; the recording it names, to
find orphans) until the end; so must ``reconcile`` of a month. Kept in Python
dicts that grows without bound with the archive (several KB a call: 31 GB at
5 million calls). Kept in a temporary SQLite file it costs about 120 bytes
of disk a call and a bounded page cache of memory, whatever the size.

The file lives in a private temporary directory (0700, the file 0600) under
``ARCHIVER_SCRATCH_DIR`` (default: the system's temporary directory, as
:func:`tempfile.gettempdir` finds it), and is removed when the command ends,
whatever the way it ends. It is never a record: nothing in it is needed
again, so it is written with no journal and no fsync (``journal_mode=OFF``,
``synchronous=OFF``: a crash loses only the command's own scratch). Where no
writable place exists (a read-only container), the same tables are kept in
memory (``:memory:``), with a warning: today's cost, not a failure.

Where it goes matters on a container whose ``/tmp`` is a tmpfs: the disk
there is memory again. Point ``ARCHIVER_SCRATCH_DIR`` at a real volume
(docs/operations.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("archiver.scratch")

#: The page cache of one scratch connection, in KiB (bounds its memory).
CACHE_KIB = 16 * 1024

_PRAGMAS = (
    "PRAGMA journal_mode=OFF",
    "PRAGMA synchronous=OFF",
    "PRAGMA locking_mode=EXCLUSIVE",
    "PRAGMA temp_store=FILE",
)


def _configure(connection: sqlite3.Connection) -> sqlite3.Connection:
    for pragma in _PRAGMAS:
        connection.execute(pragma)
    # Read when opened: a memory test sets it smaller to see what else grows.
    connection.execute(f"PRAGMA cache_size=-{int(CACHE_KIB)}")
    return connection


def _in_memory(why: str) -> sqlite3.Connection:
    log.warning(
        "scratch: %s; keeping the command's scratch tables in memory instead "
        "(set ARCHIVER_SCRATCH_DIR to a writable folder to bound its memory)",
        why,
    )
    return _configure(sqlite3.connect(":memory:"))


@contextlib.contextmanager
def open_scratch(
    directory: Path | str | None = None, name: str = "scratch"
) -> Iterator[sqlite3.Connection]:
    """A fresh SQLite connection on a temporary file, removed (with its folder) at exit.

    ``directory``: where the private folder is made (None: the system's
    temporary directory). ``name`` is only for a person looking at the folder
    while the command runs. A place that cannot be written falls back to
    ``:memory:`` with a warning. The connection is in autocommit mode off
    (Python's default): commit a batch with ``connection.commit()`` or not at
    all (nothing survives the command anyway).
    """
    base = Path(directory) if directory else Path(tempfile.gettempdir())
    try:
        folder = tempfile.TemporaryDirectory(prefix="archiver-", dir=base)
    except OSError as exc:
        connection = _in_memory(f"cannot make a folder in {base} ({exc.strerror or exc})")
        try:
            yield connection
        finally:
            connection.close()
        return
    with folder:
        # mkdtemp makes it 0700; the file 0600 whatever the umask.
        path = Path(folder.name) / f"{name}.sqlite"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            os.close(fd)
            connection = _configure(sqlite3.connect(path))
        except (OSError, sqlite3.Error) as exc:
            connection = _in_memory(f"cannot write {path} ({exc})")
        try:
            yield connection
        finally:
            connection.close()
