"""``verify``: every manifest entry proven intact, or listed as what it is.

How each object is checked, without ``--deep``:

- it exists (HEAD with ``ChecksumMode=ENABLED``; in a versioned bucket, the
  version the manifest recorded) with the manifest's size;
- its proof: the ETag and the server-verified ``ChecksumSHA256`` (full object,
  or COMPOSITE for a multipart upload) the storage reports must be the ones
  recorded in the line when it was written. Another value means the object was
  replaced (ALTERED); a full-object SHA-256 other than the manifest's means
  its bytes are not the archived ones (CORRUPT). Client-set metadata
  (``x-amz-meta-sha256``) is never evidence;
- an object with no server-side proof (a local file, a legacy multipart
  upload, an endpoint without checksums) is read back and re-hashed, or with
  ``rehash=False`` listed as UNPROVEN;
- legacy lines (written before proof was recorded) are checked on their size
  and the storage's own full-object SHA-256, else re-hashed.

``deep`` re-hashes every object whatever the storage says. In a versioned
bucket, a recorded version still intact while the current object differs is
reported too: the key no longer serves the archived bytes.

Beside the objects: the manifest chain (:mod:`archiver.retrieval.chain_audit`),
one call line per call (DUPLICATE, unless a chained supersede record sets the
second aside: :mod:`archiver.retrieval.duplicates`) and the id index
(:mod:`archiver.retrieval.index_audit`). Objects are checked
``concurrency`` at once; manifests are read a few at a time ahead of the
checks, so memory stays bounded by the index cross-check's expected pointers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Collection
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from archiver.errors import PlantedLinkError
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import date_span, in_range
from archiver.retrieval.chain_audit import ChainAudit
from archiver.retrieval.duplicates import read_records
from archiver.retrieval.fetch import archived_version
from archiver.retrieval.index_audit import ExpectedPointers
from archiver.retrieval.link_table import LinkTable
from archiver.retrieval.manifest_listing import ListedManifests
from archiver.retrieval.orphans import OrphanRule, OrphanScan
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.range_audit import chains_for
from archiver.retrieval.sampling import Sample, SampledQueue
from archiver.retrieval.scratch import open_scratch
from archiver.retrieval.tombstones import read_tombstones
from archiver.retrieval.verify_report import VerifyReport
from archiver.retrieval.verify_scratch import ArchivedTimes, VerifyScratch
from archiver.storage.base import ObjectStore, StoredObject, VersionedStore

__all__ = ["Problem", "ProblemKind", "VerifyReport", "check_entry", "verify_archive"]


async def _rehash(store: ObjectStore, key: str, version_id: str | None) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    if version_id is not None and isinstance(store, VersionedStore):
        chunks = store.read_version(key, version_id)
    else:
        chunks = store.read(key)
    async for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _against_proof(call: ManifestEntry, key: str, head: StoredObject) -> Problem | None:
    """What the storage says of ``head`` against the line (pure); None if nothing differs."""
    if head.size != call.size:
        return Problem(
            ProblemKind.ALTERED, key, f"{head.size} bytes, the manifest records {call.size}", call
        )
    if head.sha256 is not None and head.sha256 != call.sha256:
        return Problem(
            ProblemKind.CORRUPT,
            key,
            f"the storage's SHA-256 is {head.sha256}, the manifest records {call.sha256}",
            call,
        )
    if call.proof is not None:
        diffs = call.proof.differences(head.proof)
        if diffs:
            return Problem(
                ProblemKind.ALTERED,
                key,
                f"not the object stored when archived: {'; '.join(diffs)}",
                call,
            )
    return None


def _proven(call: ManifestEntry, head: StoredObject) -> bool:
    """True when a server-verified checksum ties ``head`` to the line (after _against_proof)."""
    if head.sha256 is not None:  # a full-object SHA-256: equal to the manifest's by now
        return True
    return call.proof is not None and call.proof.proves_bytes


async def _confirm_by_bytes(store: ObjectStore, problem: Problem, deep: bool) -> Problem:
    """``deep``: an ALTERED object is read back; bytes not the manifest's make it CORRUPT."""
    if not deep or problem.kind is not ProblemKind.ALTERED or problem.call is None:
        return problem
    try:
        size, digest = await _rehash(store, problem.where, None)
    except KeyError:
        return problem
    if digest == problem.call.sha256:
        return problem
    return replace(
        problem,
        kind=ProblemKind.CORRUPT,
        detail=f"{problem.detail}; its {size} bytes have SHA-256 {digest}",
    )


async def _pinned(
    store: ObjectStore, call: ManifestEntry, key: str, current: StoredObject | None
) -> tuple[StoredObject | None, Problem | None]:
    """In a versioned bucket: the recorded version, and what is wrong with the current one."""
    version = call.proof.version_id if call.proof else None
    if version is None or not isinstance(store, VersionedStore):
        return current, None
    if current is not None and current.proof.version_id == version:
        return current, None
    pinned = await store.head_version(key, version)
    if pinned is None:
        return None, Problem(
            ProblemKind.MISSING, key, f"the recorded version {version} is gone", call
        )
    if current is None:
        state, kind = "deleted (a delete marker)", ProblemKind.MISSING
    else:
        found = _against_proof(call, key, current)
        kind = found.kind if found is not None else ProblemKind.ALTERED
        state = f"version {current.proof.version_id}" + (f" ({found.detail})" if found else "")
    return pinned, Problem(
        kind,
        key,
        f"the current object is {state}, not the recorded version; version {version} "
        "still holds the archived bytes (get serves it)",
        call,
    )


async def check_entry(
    store: ObjectStore,
    call: ManifestEntry,
    deep: bool,
    report: VerifyReport,
    rehash: bool = True,
) -> Problem | None:
    """Check one entry's object; updates ``report``'s counters, returns a problem or None."""
    try:
        return await _check_entry(store, call, deep, report, rehash)
    except PlantedLinkError as exc:
        # A planted symbolic link on the way: a problem of this key, not a stop.
        detail = f"{exc.folder} is a symbolic link (the archiver makes none): not followed"
        return Problem(ProblemKind.SYMLINK, call.object_key, detail, call)


async def _check_entry(
    store: ObjectStore, call: ManifestEntry, deep: bool, report: VerifyReport, rehash: bool
) -> Problem | None:
    try:
        key = store.relative_key(call.object_key)
    except ValueError:
        return Problem(
            ProblemKind.MISSING, call.object_key, f"not a key of {store.description}", call
        )
    if call.legacy:
        report.legacy += 1
    head, current_problem = await _pinned(store, call, key, await store.head(key))
    if current_problem is not None:
        current_problem = await _confirm_by_bytes(store, current_problem, deep)
    if head is None:
        return current_problem or Problem(ProblemKind.MISSING, key, "no such object", call)
    found = _against_proof(call, key, head)
    if found is not None:
        return await _confirm_by_bytes(store, found, deep)
    version = head.proof.version_id if call.proof and call.proof.version_id else None
    if deep or not _proven(call, head):
        if not (deep or rehash):
            return Problem(
                ProblemKind.UNPROVEN,
                key,
                "the storage keeps no checksum of it and it was not re-hashed "
                "(drop --no-rehash, or use --deep)",
                call,
            )
        try:
            size, digest = await _rehash(store, key, version)
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
    else:
        report.by_checksum += 1
    return current_problem


async def _with_archived_version(store: ObjectStore, problem: Problem) -> Problem:
    """A legacy line: say so when a versioned bucket still holds the archived bytes."""
    call = problem.call
    if call is None or not call.legacy or not isinstance(store, VersionedStore):
        return problem
    try:
        key = store.relative_key(call.object_key)
    except ValueError:
        return problem
    version = await archived_version(store, key, call)
    if version is None:
        return problem
    detail = f"{problem.detail}; version {version} still holds the archived bytes (get serves it)"
    return replace(problem, detail=detail)


async def verify_archive(
    store: ObjectStore,
    manifests: Collection[StoredObject],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    tz: tzinfo | None = None,
    deep: bool = False,
    rehash: bool = True,
    concurrency: int = 16,
    on_progress: Callable[[VerifyReport], None] | None = None,
    orphans: OrphanRule | None = None,
    sample: Sample | None = None,
    scratch_dir: Path | None = None,
    keep_archived: bool = True,
    scratch: sqlite3.Connection | None = None,
) -> VerifyReport:
    """Check every entry of ``manifests`` (calls started in [since, until)), the chain, the index.

    At most ``concurrency`` objects are checked at once; the queue between the
    manifest reader and the checkers is bounded. What must be remembered of
    every line until the end (its call, for DUPLICATE; its recording, for
    ORPHAN; the manifest objects read) goes to a scratch SQLite file under
    ``scratch_dir`` (:mod:`archiver.retrieval.scratch`), removed at the end.
    With ``orphans`` and the whole archive asked, every recording listed that
    no line names is reported once older than the rule's bound (ORPHAN).
    ``keep_archived``: fill ``report.archived`` (the timestamp check's; an entry
    per manifest object, so only when timestamps are checked).
    ``scratch``: an open scratch connection the caller keeps open after the report is
    used (then ``report.chains`` lives on it; ``manifests`` may be a ListedManifests on
    it); None: one of its own for the run (the links in a dict, usable after the run).
    """
    with contextlib.ExitStack() as stack:
        db = (
            scratch
            if scratch is not None
            else stack.enter_context(open_scratch(scratch_dir, "verify"))
        )
        return await _verify(
            store,
            manifests,
            VerifyScratch(db),
            _Asked(
                since,
                until,
                tz or UTC,
                deep,
                rehash,
                max(1, concurrency),
                orphans,
                sample,
                keep_archived,
                scratch is not None,
            ),
            on_progress,
        )


@dataclass(frozen=True, slots=True)
class _Asked:
    since: datetime | None
    until: datetime | None
    tz: tzinfo
    deep: bool
    rehash: bool
    concurrency: int
    orphans: OrphanRule | None
    sample: Sample | None
    keep_archived: bool
    links_on_scratch: bool  # the caller keeps the scratch open while it uses the report


async def _verify(
    store: ObjectStore,
    manifests: Collection[StoredObject],
    memo: VerifyScratch,
    asked: _Asked,
    on_progress: Callable[[VerifyReport], None] | None,
) -> VerifyReport:
    since, until, workers = asked.since, asked.until, asked.concurrency
    listed = ListedManifests.on(memo.db, manifests)  # ~400 bytes an object as StoredObjects
    report, archived = VerifyReport(manifests=len(manifests)), dict[str, datetime]()
    # Links and walks on the scratch file too (else ~530 bytes an object, ~2 KB a link).
    links, walks = (LinkTable(memo.db), memo.db) if asked.links_on_scratch else (None, None)
    chains: ChainAudit = await chains_for(store, since, until, asked.tz, links, walks)
    report.problems += listed.foreign_problems() + chains.problems
    tombstones = await read_tombstones(store, chains.links, db=memo.db)
    report.problems += tombstones.problems
    expected = ExpectedPointers(memo.db)
    await expected.look(store)
    whole = since is None and until is None
    scan = OrphanScan(asked.orphans, memo.db) if asked.orphans is not None and whole else None
    queue: asyncio.Queue[ManifestEntry | None] = SampledQueue(asked.sample, maxsize=workers * 4)

    def progressed() -> None:
        if on_progress is not None:
            on_progress(report)

    async def produce() -> None:
        async with aclosing(chains.read_manifests(store, listed)) as reader:
            async for manifest in reader:
                report.manifests_read += 1
                number = None
                if not manifest.missing:
                    times = [t for c in manifest.calls if (t := c.archived_at) is not None]
                    if times and asked.keep_archived and not asked.links_on_scratch:
                        archived[manifest.key] = max(times)  # else read back from memo
                    number = memo.read(manifest, max(times) if times else None)
                    chained = chains.check_manifest(manifest)
                    if chained is not None:
                        report.problems.append(chained)
                for bad in manifest.bad_lines:
                    where = f"{bad.manifest_key} line {bad.line_number}"
                    report.problems.append(Problem(ProblemKind.BAD_LINE, where, bad.reason))
                ranged = []
                for call, line in zip(manifest.calls, manifest.numbers, strict=True):
                    if scan is not None:
                        scan.add(store, call)
                    if in_range(call, since, until):
                        ranged.append((call, line))
                        expected.add(call, (manifest.key, line))
                if number is not None:
                    memo.lines(number, ranged)
                for call, _ in ranged:
                    report.entries += 1
                    await queue.put(call)
                progressed()
        for _ in range(workers):
            await queue.put(None)

    async def check() -> None:
        while (call := await queue.get()) is not None:
            problem = await check_entry(store, call, asked.deep, report, asked.rehash)
            report.checked += 1
            if problem and problem.kind is ProblemKind.MISSING and tombstones.of(call):
                report.disposed, problem = report.disposed + 1, None  # disposed, not lost
            if problem is not None and report.keep(problem):
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
    first, last = date_span(since, until, asked.tz)
    report.problems += await chains.unseen(store, memo, first, last)
    if scan is not None:
        report.problems += await scan.problems(store)
        report.recordings_listed, report.waiting = scan.listed, scan.waiting
    records = await read_records(store, chains.links)
    duplicates, report.superseded = await memo.duplicates(store, records.supersessions, whole=whole)
    report.problems += records.problems + duplicates
    index_problems, report.pointers = await expected.audit(store, whole=whole)
    report.problems += index_problems
    report.chains, report.archived = chains, archived
    if asked.keep_archived and asked.links_on_scratch:
        report.archived = ArchivedTimes(memo.db)  # ~150 bytes a manifest object in a dict
    report.writers, report.unchained = chains.writers, chains.unchained
    report.links = len(chains.links)
    report.problems.sort(key=lambda p: (p.where, p.kind.value))
    return report
