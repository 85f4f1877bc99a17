"""Find one archived call for ``get`` and ``hold``: the local index of the manifests, then
the manifest itself.

The index is the console's SQLite file (``ARCHIVER_CONSOLE__INDEX_PATH``), a
cache of the storage: before each lookup it reads the manifest objects it has
not seen (one listing of ``manifests/`` when nothing is new), so a machine
that never saw the archive builds it from the storage alone on its first
``get``, and later ones cost a listing and an indexed SELECT. Where that file
cannot be opened (a read-only directory), the index is built in memory for
this one command, and a warning says so.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from archiver.console.db import Database
from archiver.console.index import CallIndex
from archiver.manifest.entry import ManifestEntry
from archiver.retrieval.index import resolve
from archiver.storage import ObjectStore

log = logging.getLogger("archiver.get")


def _open(path: Path) -> Database:
    try:
        return Database(path)
    except sqlite3.Error as exc:
        log.warning(
            "the local index %s cannot be opened (%s): built in memory for this command",
            path,
            exc,
        )
        return Database(Path(":memory:"))


async def find_call(
    store: ObjectStore, index_path: Path, ident: str, provider: str | None = None
) -> ManifestEntry:
    """The archived call ``ident`` names, checked against its manifest object.

    ``index_path`` is the local index's file (created if missing). Raises
    CallNotFoundError, AmbiguousIdError or IntegrityError as
    :func:`archiver.retrieval.index.resolve` does.
    """
    db = _open(index_path)
    try:
        calls = CallIndex(db)
        await calls.refresh(store)
        indexed = await calls.by_ident(ident)
    finally:
        db.close()
    return await resolve(store, ident, provider, indexed)
