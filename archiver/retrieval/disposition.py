"""Disposition: which recordings are due, which must be kept and why, and deleting them.

Used by ``archiver dispose`` (retention ended) and ``archiver subject --erase``
(a data subject's request). For each candidate call line, in order:

1. a recording already under a tombstone is done (if it is still stored, a
   run stopped between its tombstone and its deletion: it is deleted now);
2. a recording gone with no tombstone is skipped: verify reports it MISSING,
   and a disposition never covers a loss;
3. in a bucket with Object Lock, every version of the key is read: a legal
   hold on any of them, or a retain-until date after now, keeps the recording
   (named, with the reason); legal holds outrank every rule;
4. otherwise its tombstone is written (chained, before anything is deleted),
   then every version (and delete marker) of the key is deleted, or the
   object itself where the storage keeps no versions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime

from archiver.errors import ArchiverError
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.retention import Due
from archiver.manifest.rollup_read import read_manifests
from archiver.manifest.tombstone import Tombstone, write_tombstones
from archiver.retrieval.tombstones import Tombstones
from archiver.storage.base import LockingStore, ObjectStore, VersionedStore
from archiver.storage.layout import MANIFEST_PREFIX


@dataclass(frozen=True, slots=True)
class Candidate:
    """One call line asked to go, with its rule and where the line is."""

    call: ManifestEntry
    line: int
    due: Due


@dataclass
class Plan:
    """What a disposition found: what may go, what stays and why, what was done before."""

    deletable: list[tuple[Candidate, list[str]]] = field(default_factory=list)  # + versions
    kept: list[tuple[Candidate, str]] = field(default_factory=list)
    pending: list[Tombstone] = field(default_factory=list)  # tombstoned, still stored
    done_before: int = 0


@dataclass
class Outcome:
    """What a disposition did."""

    disposed: list[Tombstone] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    writer: str | None = None


async def candidates(
    store: ObjectStore, wanted: Callable[[ManifestEntry], Due | None]
) -> AsyncIterator[Candidate]:
    """Each call line ``wanted`` gives a Due for, once per recording (key and SHA-256)."""
    objects = [obj async for obj in store.list(MANIFEST_PREFIX)]
    seen: set[tuple[str, str]] = set()
    async with aclosing(read_manifests(store, objects)) as reader:
        async for manifest in reader:
            for call, number in zip(manifest.calls, manifest.numbers, strict=True):
                named = (call.object_key, call.sha256)
                if named in seen:
                    continue
                due = wanted(call)
                if due is not None:
                    seen.add(named)
                    yield Candidate(call, number, due)


async def _versions(store: ObjectStore, key: str) -> list[str] | None:
    """Every version id (delete markers too) of ``key``; [] for an unversioned object;
    None when nothing holds the recording."""
    if isinstance(store, VersionedStore):
        versions = await store.versions(key)
        if any(not v.delete_marker for v in versions):
            return [v.version_id for v in versions]
    return [] if await store.head(key) is not None else None


async def keeps(store: ObjectStore, key: str, versions: list[str], now: datetime) -> str | None:
    """Why ``key`` must stay (a legal hold, an Object Lock date), or None."""
    if not isinstance(store, LockingStore):
        return None
    for version in versions or [None]:  # type: ignore[list-item]
        try:
            protection = await store.protection(key, version)
        except KeyError:
            continue
        if protection is None:
            continue
        named = f" (version {version})" if version else ""
        if protection.legal_hold:
            return f"legal hold{named}: holds outrank every retention rule"
        if protection.retain_until is not None and protection.retain_until > now:
            return (
                f"Object Lock {protection.mode or ''} until "
                f"{protection.retain_until.isoformat()}{named}".replace("  ", " ")
            )
    return None


async def plan(
    store: ObjectStore, tombstones: Tombstones, found: AsyncIterator[Candidate], now: datetime
) -> Plan:
    """Sort the candidates into deletable, kept (with the reason) and already done."""
    result = Plan()
    async for candidate in found:
        call = candidate.call
        try:
            key = store.relative_key(call.object_key)
        except ValueError:
            result.kept.append((candidate, f"not a key of {store.description}"))
            continue
        versions = await _versions(store, key)
        stone = tombstones.of(call)
        if stone is not None:
            if versions is None:
                result.done_before += 1
            else:
                result.pending.append(stone)
            continue
        if versions is None:
            result.kept.append(
                (candidate, "already gone with no tombstone: MISSING, not disposed (verify)")
            )
            continue
        why = await keeps(store, key, versions, now)
        if why is not None:
            result.kept.append((candidate, why))
        else:
            result.deletable.append((candidate, versions))
    return result


def stone_of(candidate: Candidate, versions: list[str], reason: str, approver: str) -> Tombstone:
    """The tombstone of one deletable candidate (pure)."""
    call = candidate.call
    return Tombstone(
        provider=call.provider,
        cdr_id=call.cdr_id,
        sip_call_id=call.sip_call_id,
        object_key=call.object_key,
        sha256=call.sha256,
        size=call.size,
        manifest=call.manifest_key or "",
        line=candidate.line,
        rule=candidate.due.rule,
        reason=reason,
        approved_by=approver,
        versions=tuple(versions),
    )


async def delete_recording(store: ObjectStore, key: str, versions: list[str]) -> None:
    """Delete every version of ``key`` (delete markers too), or the object itself."""
    if versions and isinstance(store, VersionedStore):
        for version in versions:
            await store.delete_version(key, version)
    else:
        await store.delete(key)


async def execute(
    store: ObjectStore, found: Plan, reason: str, approver: str, now: datetime
) -> Outcome:
    """Tombstones first (one chained writer), then the deletions; failures collected."""
    stones = [stone_of(c, v, reason, approver) for c, v in found.deletable]
    outcome = Outcome()
    outcome.writer, written = await write_tombstones(
        store, stones, now, "dispose" if reason == "retention" else "erasure"
    )
    for stone in [*written, *found.pending]:
        try:
            key = store.relative_key(stone.object_key)
            await delete_recording(store, key, list(stone.versions))
        except (ArchiverError, OSError, KeyError) as exc:
            outcome.failed.append((stone.object_key, str(exc)))
            continue
        outcome.disposed.append(stone)
    return outcome
