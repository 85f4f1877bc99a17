"""``verify`` in a versioned bucket: the version history of the chain and the manifests.

Every object of the chain and every manifest object is written once, and a
head only ever moves forward; in a versioned bucket (every Object Lock bucket
is one) whatever replaced or deleted them stays as versions. So, without any
witness:

- every version a writer's head ever had must name a link of the chain as it
  is now (walked back from the current head) with the same SHA-256: a head
  version naming a link that is no longer there, or other bytes, shows a
  truncation or a rewrite (``CHAIN-REWRITTEN``); a delete marker on a head too;
- a link with a second version or a delete marker is ``CHAIN-REWRITTEN``;
  a token with one is ``TIMESTAMP``;
- a manifest object with a second version is ``MANIFEST-ALTERED``, with a
  delete marker ``MANIFEST-HIDDEN``.

Versions removed for good (possible without Object Lock, or in GOVERNANCE
mode with the bypass permission) leave no trace here: that is what Object Lock
COMPLIANCE, or a witness, adds.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from archiver.errors import StorageError
from archiver.manifest.chain import Head, sha256_hex
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.rollup_audit import listed_bytes
from archiver.storage.base import LockingStore, ObjectStore, ObjectVersion, VersionedStore
from archiver.storage.layout import CHAIN_PREFIX, HEAD_NAME, MANIFEST_PREFIX, parse_chain_key
from archiver.timestamping import STAMP_SUFFIX
from archiver.witness.checkpoint import ChainState

MAX_HEAD_BYTES = 64 * 1024


@dataclass
class History:
    """What the bucket keeps, and what its versions show."""

    versioning: str = "none"  # "Enabled", "Suspended", "Disabled", or "none" (not S3)
    object_lock: str | None = None  # the mode objects are locked in, if any
    head_versions: int = 0  # head versions checked against the chain
    problems: list[Problem] = field(default_factory=list)

    @property
    def versioned(self) -> bool:
        """True when the bucket keeps versions (history can be read)."""
        return self.versioning in ("Enabled", "Suspended")


async def _head_at(store: VersionedStore, key: str, version: ObjectVersion) -> Head | str:
    if version.size > MAX_HEAD_BYTES:
        return f"version {version.version_id} is {version.size} bytes: not a head"
    chunks = []
    try:
        async for chunk in store.read_version(key, version.version_id):
            chunks.append(chunk)
    except KeyError:
        return f"version {version.version_id} vanished while being read"
    data = b"".join(chunks)
    try:
        return Head.from_bytes(data)
    except ValueError as exc:
        return f"version {version.version_id} ({sha256_hex(data)[:16]}) is not a head: {exc}"


async def audit_history(store: ObjectStore, chains: ChainState, lock_mode: str | None) -> History:
    """Read the versions under the chain and the manifests (when the bucket keeps any), a
    key's versions at a time, in the listing's order: memory does not grow with them (one
    head version a manifest object in the service's shape: 1.2 million at 5M calls)."""
    history = History()
    if not isinstance(store, LockingStore) or not isinstance(store, VersionedStore):
        return history
    try:
        bucket = await store.bucket_protection()
    except StorageError:
        # A read-only auditor may not read the bucket's settings: say so, read no history.
        history.versioning = "unknown"
        return history
    history.versioning = bucket.versioning
    if bucket.object_lock:
        history.object_lock = lock_mode or bucket.default_mode or "enabled, no retention set"
    if not history.versioned:
        return history
    for prefix in (CHAIN_PREFIX, MANIFEST_PREFIX):
        group: _Key | None = None
        async for key, version in store.all_versions(prefix):
            if group is None or key != group.key:
                if group is not None:
                    await group.close(history)
                group = _Key(key, store, chains)
            await group.add(version, history)
        if group is not None:
            await group.close(history)
    return history


class _Key:
    """One key's versions, as they are listed (newest first): counted, and a head's each
    checked against the chain as it is."""

    def __init__(self, key: str, store: VersionedStore, chains: ChainState) -> None:
        self.key, self.kept, self.markers = key, 0, 0
        parsed = parse_chain_key(key)
        self.parsed = parsed
        is_head = key.startswith(CHAIN_PREFIX) and key.endswith("/" + HEAD_NAME) and parsed
        self.heads = _HeadVersions(store, chains, key, parsed[0]) if is_head and parsed else None

    async def add(self, version: ObjectVersion, history: History) -> None:
        if version.delete_marker:
            self.markers += 1
            return
        self.kept += 1
        if self.heads is not None:
            history.head_versions += 1
            await self.heads.add(version)

    async def close(self, history: History) -> None:
        key, kept, markers = self.key, self.kept, self.markers
        if self.heads is not None:
            if markers:
                history.problems.append(
                    _problem(ProblemKind.CHAIN_REWRITTEN, key, "deleted", markers)
                )
            problem = await self.heads.close()
            if problem is not None:
                history.problems.append(problem)
            return
        if kept <= 1 and not markers:
            return
        what = _what(kept, markers)
        if key.startswith(MANIFEST_PREFIX):
            kind = ProblemKind.MANIFEST_ALTERED if kept > 1 else ProblemKind.MANIFEST_HIDDEN
        elif key.endswith(STAMP_SUFFIX):
            kind = ProblemKind.TIMESTAMP
        elif self.parsed is not None:
            kind = ProblemKind.CHAIN_REWRITTEN
        else:
            return
        history.problems.append(Problem(kind, key, f"written once, yet {what}"))


def _what(kept: int, markers: int) -> str:
    parts = []
    if kept > 1:
        parts.append(f"{kept} versions (rewritten)")
    if markers:
        parts.append(f"{markers} delete marker(s) (deleted)")
    return " and ".join(parts)


def _problem(kind: ProblemKind, key: str, what: str, count: int) -> Problem:
    return Problem(kind, key, f"the head was {what}: {count} delete marker(s) in its history")


# A head version is read only when its listed ETag proves none of the heads the chain's
# links make within this many links below the one the previous version named.
PROVE_WINDOW = 4096
# After this many versions in a row not proven so, the rest of the head's are read.
_MISSES = 3
_MD5 = re.compile(r"[0-9a-f]{32}")
# Head versions read at once, and gathered at a time.
_READ_AT_ONCE = 16
_BATCH = 256


class _HeadVersions:
    """Every version of one writer's head against the chain as it is, newest first.

    A head's bytes are canonical (its writer, seq and link SHA-256), so a version whose
    listed ETag is the MD5 of the head the chain's link ``s`` makes (with its size) is
    that head, proven without a read; heads only move forward, so the next (older)
    version names ``s`` or a link below it, and the search goes down from there. A
    version not proven so (encrypted, written in parts, or not a head of this chain) is
    read, :data:`_BATCH` at a time."""

    def __init__(self, store: VersionedStore, chains: ChainState, key: str, writer: str) -> None:
        self.store, self.key, self.writer = store, key, writer
        self.walk = chains.walks.get(writer, {})
        self.heads = chains.heads
        current = chains.heads.get(writer)
        self.below = current[0] if current else 0  # no older version names a link above
        self.unread: list[ObjectVersion] = []
        self.misses = 0  # searches in a row that proved nothing
        self.problem: Problem | None = None  # one a head is enough to name it
        self.semaphore = asyncio.Semaphore(_READ_AT_ONCE)

    async def add(self, version: ObjectVersion) -> None:
        if not self._proven(version):
            self.unread.append(version)
            if len(self.unread) >= _BATCH:
                await self._read_unread()

    async def close(self) -> Problem | None:
        await self._read_unread()
        return self.problem

    def _proven(self, version: ObjectVersion) -> bool:
        if self.misses >= _MISSES or not _MD5.fullmatch(version.etag or ""):
            return False  # not provable so (encrypted, in parts), or this head's are not
        self.misses += 1
        for seq in range(self.below, max(self.below - PROVE_WINDOW, 0), -1):
            sha = self.walk.get(seq)
            if sha is None:
                continue
            head = Head(self.writer, seq, sha).to_bytes()
            if listed_bytes(version.size, version.etag, head):
                self.below, self.misses = seq, 0
                return True
        return False

    async def _read_unread(self) -> None:
        found = await asyncio.gather(*(self._one(v) for v in self.unread))
        self.unread = []
        for problem in found:
            if problem is not None and self.problem is None:
                self.problem = problem

    async def _one(self, version: ObjectVersion) -> Problem | None:
        async with self.semaphore:
            head = await _head_at(self.store, self.key, version)
        key, walk = self.key, self.walk
        if isinstance(head, str):
            return Problem(ProblemKind.CHAIN_REWRITTEN, key, head)
        if walk.get(head.seq) == head.link_sha256:
            return None
        if head.seq not in walk:
            current = self.heads.get(self.writer)
            where = f"the head is now at link {current[0]}" if current else "the chain is gone"
            what = f"it once named link {head.seq}, which the chain no longer reaches ({where})"
        else:
            what = f"it once named link {head.seq} as {head.link_sha256}, now {walk[head.seq]}"
        return Problem(
            ProblemKind.CHAIN_REWRITTEN,
            key,
            f"version {version.version_id}: {what}: heads only move forward, so the chain was "
            "truncated or rewritten",
        )
