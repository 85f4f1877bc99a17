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
import re

from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import read_object
from archiver.retrieval.index import INDEX_PREFIX, pointer_body, pointer_keys
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.storage.base import ObjectStore

_MD5 = re.compile(r"[0-9a-f]{32}")


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class ExpectedPointers:
    """The pointers the manifest lines read so far call for: key -> acceptable bodies' MD5s."""

    def __init__(self) -> None:
        self._expected: dict[str, set[str]] = {}
        self._lines: dict[str, ManifestEntry] = {}

    def add(self, call: ManifestEntry) -> None:
        """Expect ``call``'s pointers (a recording listed twice may point at either line)."""
        digest = _md5(pointer_body(call))
        for key in pointer_keys(call):
            self._expected.setdefault(key, set()).add(digest)
            self._lines.setdefault(key, call)

    async def audit(
        self, store: ObjectStore, *, whole: bool, concurrency: int = 16
    ) -> tuple[list[Problem], int]:
        """The index problems, and how many pointers were compared (one listing; a pointer
        is read only when its ETag cannot settle it, ``concurrency`` at a time)."""
        problems: list[Problem] = []
        found: set[str] = set()
        to_read: list[str] = []
        async for obj in store.list(INDEX_PREFIX):
            wanted = self._expected.get(obj.key)
            if wanted is None:
                if whole:
                    problems.append(
                        Problem(ProblemKind.INDEX, obj.key, "a pointer no manifest line calls for")
                    )
                continue
            found.add(obj.key)
            etag = obj.proof.etag
            if etag is None or not _MD5.fullmatch(etag) or etag not in wanted:
                to_read.append(obj.key)
        pending = iter(to_read)

        async def reader() -> None:
            # A few workers over one iterator: bounded, whatever the index's size.
            for key in pending:
                try:
                    body = await read_object(store, key)
                except KeyError:
                    found.discard(key)
                    continue
                if _md5(body) not in self._expected[key]:
                    problems.append(
                        Problem(
                            ProblemKind.INDEX,
                            key,
                            "the pointer does not match its manifest line (get would refuse "
                            "or serve another line; archiver reindex cannot fix a wrong pointer)",
                            self._lines[key],
                        )
                    )

        await asyncio.gather(*(reader() for _ in range(max(1, concurrency))))
        return problems, len(found)
