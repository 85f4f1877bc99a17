"""``verify``'s cross-check of the id index (``_archiver/ids/``) against the manifest.

Every manifest line read gives the pointers it must have and their exact
bytes (:func:`archiver.retrieval.index.pointer_body`). One listing of the
index then compares each pointer's ETag with the MD5 of those bytes (S3 gives
a single-part object's MD5 as its ETag, at no extra request); a pointer whose
ETag is not a plain MD5 (a local file, SSE-KMS) is read and compared. A
pointer that differs points ``get`` at another line than the manifest's (it
refuses it). A missing one is no problem: pointers are no longer written
while archiving (``get`` finds calls through the local index of the
manifests), only by ``archiver reindex`` and in older archives. With the
whole archive verified, a pointer that no line expects is reported too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3

from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import parse_manifest, read_object
from archiver.manifest.supersede import Location
from archiver.retrieval.index import INDEX_PREFIX, pointer_body, pointer_keys
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.storage.base import ObjectStore

log = logging.getLogger("archiver.verify")

_MD5 = re.compile(r"[0-9a-f]{32}")


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class ExpectedPointers:
    """The pointers the manifest lines read so far call for: key -> acceptable bodies' MD5s.

    Kept in a table of ``db`` (the command's scratch file; in memory when none
    is given), and only when the index has pointers at all (:meth:`look`):
    today's archives have none, and then nothing is kept per line.
    """

    def __init__(self, db: sqlite3.Connection | None = None) -> None:
        self.db = db if db is not None else sqlite3.connect(":memory:")
        self.db.execute(
            "CREATE TABLE pointers (key TEXT PRIMARY KEY, md5s TEXT NOT NULL, "
            "manifest TEXT NOT NULL, line INTEGER NOT NULL) WITHOUT ROWID"
        )
        self.present = True  # until look() says the index is empty

    async def look(self, store: ObjectStore) -> bool:
        """Whether the index has any pointer (the first page of one listing)."""
        self.present = False
        async for _ in store.list(INDEX_PREFIX):
            self.present = True
            break
        return self.present

    def add(self, call: ManifestEntry, location: Location | None = None) -> None:
        """Expect ``call``'s pointers (a recording listed twice may point at either line);
        ``location``: where the line is, to name it in a problem."""
        if not self.present:
            return
        digest = _md5(pointer_body(call))
        manifest, line = location if location is not None else ("", 0)
        self.db.executemany(
            "INSERT INTO pointers VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE "
            "SET md5s = md5s || ' ' || excluded.md5s WHERE instr(md5s, excluded.md5s) = 0",
            [(key, digest, manifest, line) for key in pointer_keys(call)],
        )

    def _wanted(self, key: str) -> set[str] | None:
        row = self.db.execute("SELECT md5s FROM pointers WHERE key = ?", (key,)).fetchone()
        return None if row is None else set(row[0].split())

    async def _line(self, store: ObjectStore, key: str) -> ManifestEntry | None:
        """The line that called for pointer ``key`` (read again: only for a problem)."""
        row = self.db.execute(
            "SELECT manifest, line FROM pointers WHERE key = ?", (key,)
        ).fetchone()
        if row is None or not row[0]:
            return None
        try:
            manifest = parse_manifest(row[0], await read_object(store, row[0]))
        except KeyError:
            return None
        for call, number in zip(manifest.calls, manifest.numbers, strict=True):
            if number == row[1]:
                return call
        return None

    async def audit(
        self, store: ObjectStore, *, whole: bool, concurrency: int = 16
    ) -> tuple[list[Problem], int]:
        """The index problems, and how many pointers were compared (one listing; a pointer
        is read only when its ETag cannot settle it, ``concurrency`` at a time, while the
        listing goes on: nothing is held per pointer)."""
        problems: list[Problem] = []
        compared = appeared = 0
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=max(1, concurrency) * 4)
        workers = max(1, concurrency)

        async def lister() -> None:
            nonlocal compared, appeared
            async for obj in store.list(INDEX_PREFIX):
                if not self.present:
                    appeared += 1  # written while verify ran: no line's expectation kept
                    continue
                wanted = self._wanted(obj.key)
                if wanted is None:
                    if whole:
                        problems.append(
                            Problem(
                                ProblemKind.INDEX, obj.key, "a pointer no manifest line calls for"
                            )
                        )
                    continue
                compared += 1
                etag = obj.proof.etag
                if etag is None or not _MD5.fullmatch(etag) or etag not in wanted:
                    await queue.put(obj.key)
            for _ in range(workers):
                await queue.put(None)

        async def reader() -> None:
            nonlocal compared
            while (key := await queue.get()) is not None:
                try:
                    body = await read_object(store, key)
                except KeyError:
                    compared -= 1  # gone since it was listed
                    continue
                if _md5(body) not in (self._wanted(key) or set()):
                    problems.append(
                        Problem(
                            ProblemKind.INDEX,
                            key,
                            "the pointer does not match its manifest line (get would refuse "
                            "or serve another line; archiver reindex cannot fix a wrong pointer)",
                            await self._line(store, key),
                        )
                    )

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(lister())
                for _ in range(workers):
                    group.create_task(reader())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        if appeared:
            log.warning(
                "verify: %d id-index pointer(s) appeared while verify ran: not cross-checked "
                "(run verify again)",
                appeared,
            )
        return problems, compared
