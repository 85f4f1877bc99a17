"""``verify``: every manifest entry's object exists with the recorded size and SHA-256.

How each object is checked:

- always: it exists (HEAD) and has the manifest's size;
- its SHA-256: the storage's own, where it keeps one (S3 single-part uploads
  carry a full-object SHA-256 checksum, verified by the server when written,
  and the ``sha256`` metadata). Multipart uploads and local files keep none:
  they are counted as "size only" unless ``deep``;
- ``deep``: every object is read back and re-hashed, whatever the storage says.

Manifest lines that cannot be read are problems too: the manifest is damaged.
Objects are checked ``concurrency`` at once; manifests are read a few at a time
ahead of the checks, so memory stays bounded whatever the archive's size.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from archiver.retrieval.fetch import archived_version
from archiver.retrieval.records import ArchivedCall, in_range, read_manifests
from archiver.storage.base import ObjectStore, StoredObject, VersionedStore


class ProblemKind(StrEnum):
    """What is wrong with one entry."""

    MISSING = "missing"  # no object at the manifest's key
    SIZE = "size"  # the object has another size
    CORRUPT = "corrupt"  # the object's SHA-256 is not the manifest's
    BAD_LINE = "bad-line"  # a manifest line that cannot be read


@dataclass(frozen=True, slots=True)
class Problem:
    """One missing or corrupt object, or one damaged manifest line."""

    kind: ProblemKind
    where: str  # the object key, or "manifest-key line N"
    detail: str
    call: ArchivedCall | None = None

    def line(self) -> str:
        """One line for the report."""
        ident = (
            f" (sip_call_id {self.call.sip_call_id}, cdr {self.call.cdr_id})" if self.call else ""
        )
        return f"{self.kind.value.upper()} {self.where}{ident}: {self.detail}"


@dataclass
class VerifyReport:
    """What a verification found; ``problems`` empty means the archive is intact."""

    manifests: int = 0
    manifests_read: int = 0
    entries: int = 0  # manifest lines in the range
    checked: int = 0  # entries whose object was checked
    by_checksum: int = 0  # SHA-256 confirmed from the storage's stored checksum
    rehashed: int = 0  # SHA-256 confirmed by reading the bytes
    size_only: int = 0  # existence and size only: no stored checksum, not deep
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing or corrupt."""
        return not self.problems

    def summary(self) -> str:
        """One paragraph for the end of the run."""
        verdict = "all intact" if self.ok else f"{len(self.problems)} problem(s)"
        text = (
            f"verified {self.checked} object(s) from {self.manifests_read} manifest object(s): "
            f"{verdict}; SHA-256 from the storage's checksum {self.by_checksum}, "
            f"re-hashed {self.rehashed} ({self.bytes_read / 1024**2:.1f} MiB read), "
            f"size only {self.size_only}"
        )
        if self.size_only:
            text += " (no stored SHA-256: multipart uploads, local files; --deep re-hashes them)"
        return text


async def _rehash(store: ObjectStore, key: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    async for chunk in store.read(key):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


async def check_entry(
    store: ObjectStore, call: ArchivedCall, deep: bool, report: VerifyReport
) -> Problem | None:
    """Check one entry's object; updates ``report``'s counters, returns a problem or None."""
    try:
        key = store.relative_key(call.object_key)
    except ValueError:
        return Problem(
            ProblemKind.MISSING, call.object_key, f"not a key of {store.description}", call
        )
    head: StoredObject | None = await store.head(key)
    if head is None:
        return Problem(ProblemKind.MISSING, key, "no such object", call)
    if head.size != call.size:
        return Problem(
            ProblemKind.SIZE, key, f"{head.size} bytes, the manifest records {call.size}", call
        )
    if deep:
        try:
            size, digest = await _rehash(store, key)
        except KeyError:
            return Problem(ProblemKind.MISSING, key, "vanished while being read", call)
        report.bytes_read += size
        if (size, digest) != (call.size, call.sha256):
            return Problem(
                ProblemKind.CORRUPT,
                key,
                f"{size} bytes with SHA-256 {digest}, the manifest records {call.sha256}",
                call,
            )
        report.rehashed += 1
    elif head.sha256 is not None:
        if head.sha256 != call.sha256:
            return Problem(
                ProblemKind.CORRUPT,
                key,
                f"stored SHA-256 {head.sha256}, the manifest records {call.sha256}",
                call,
            )
        report.by_checksum += 1
    else:
        report.size_only += 1
    return None


async def _with_archived_version(store: ObjectStore, problem: Problem) -> Problem:
    """Say so when a versioned bucket still holds the archived bytes (Object Lock keeps them)."""
    if problem.call is None or not isinstance(store, VersionedStore):
        return problem
    try:
        key = store.relative_key(problem.call.object_key)
    except ValueError:
        return problem
    version = await archived_version(store, key, problem.call)
    if version is None:
        return problem
    detail = f"{problem.detail}; version {version} still holds the archived bytes (get serves it)"
    return replace(problem, detail=detail)


async def verify_archive(
    store: ObjectStore,
    manifests: Sequence[StoredObject],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    deep: bool = False,
    concurrency: int = 16,
    on_progress: Callable[[VerifyReport], None] | None = None,
) -> VerifyReport:
    """Check every entry of ``manifests`` (calls started in [since, until)).

    At most ``concurrency`` objects are checked at once; the queue between the
    manifest reader and the checkers is bounded, so memory stays small.
    """
    report = VerifyReport(manifests=len(manifests))
    queue: asyncio.Queue[ArchivedCall | None] = asyncio.Queue(maxsize=concurrency * 4)
    workers = max(1, concurrency)

    def progressed() -> None:
        if on_progress is not None:
            on_progress(report)

    async def produce() -> None:
        async with aclosing(read_manifests(store, manifests)) as reader:
            async for manifest in reader:
                report.manifests_read += 1
                for bad in manifest.bad_lines:
                    where = f"{bad.manifest_key} line {bad.line_number}"
                    report.problems.append(Problem(ProblemKind.BAD_LINE, where, bad.reason))
                for call in manifest.calls:
                    if in_range(call, since, until):
                        report.entries += 1
                        await queue.put(call)
                progressed()
        for _ in range(workers):
            await queue.put(None)

    async def check() -> None:
        while (call := await queue.get()) is not None:
            problem = await check_entry(store, call, deep, report)
            report.checked += 1
            if problem is not None:
                report.problems.append(await _with_archived_version(store, problem))
            progressed()

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(produce(), name="verify-reader")
            for i in range(workers):
                group.create_task(check(), name=f"verify-{i}")
    except ExceptionGroup as failed:
        # A storage outage: report its first error as such (exit 1, one line).
        raise failed.exceptions[0] from None
    report.problems.sort(key=lambda p: (p.where, p.kind.value))
    return report
