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
from dataclasses import dataclass, field

from archiver.errors import StorageError
from archiver.manifest.chain import Head, sha256_hex
from archiver.retrieval.problems import Problem, ProblemKind
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
    """Read the versions under the chain and the manifests (when the bucket keeps any)."""
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
    versions: dict[str, list[ObjectVersion]] = {}
    for prefix in (CHAIN_PREFIX, MANIFEST_PREFIX):
        async for key, version in store.all_versions(prefix):
            versions.setdefault(key, []).append(version)
    heads: list[tuple[str, str, ObjectVersion]] = []
    for key, found in sorted(versions.items()):
        kept = [v for v in found if not v.delete_marker]
        markers = len(found) - len(kept)
        parsed = parse_chain_key(key)
        if key.startswith(CHAIN_PREFIX) and key.endswith("/" + HEAD_NAME) and parsed:
            heads += [(parsed[0], key, v) for v in kept]
            if markers:
                history.problems.append(
                    _problem(ProblemKind.CHAIN_REWRITTEN, key, "deleted", markers)
                )
            continue
        if len(kept) <= 1 and not markers:
            continue
        what = _what(len(kept), markers)
        if key.startswith(MANIFEST_PREFIX):
            kind = ProblemKind.MANIFEST_ALTERED if len(kept) > 1 else ProblemKind.MANIFEST_HIDDEN
        elif key.endswith(STAMP_SUFFIX):
            kind = ProblemKind.TIMESTAMP
        elif parsed is not None:
            kind = ProblemKind.CHAIN_REWRITTEN
        else:
            continue
        history.problems.append(Problem(kind, key, f"written once, yet {what}"))
    history.problems += await _heads(store, chains, heads, history)
    return history


def _what(kept: int, markers: int) -> str:
    parts = []
    if kept > 1:
        parts.append(f"{kept} versions (rewritten)")
    if markers:
        parts.append(f"{markers} delete marker(s) (deleted)")
    return " and ".join(parts)


def _problem(kind: ProblemKind, key: str, what: str, count: int) -> Problem:
    return Problem(kind, key, f"the head was {what}: {count} delete marker(s) in its history")


async def _heads(
    store: VersionedStore,
    chains: ChainState,
    heads: list[tuple[str, str, ObjectVersion]],
    history: History,
) -> list[Problem]:
    """Every version of every head against the chain as it is (at most 16 read at once)."""
    semaphore = asyncio.Semaphore(16)

    async def one(writer: str, key: str, version: ObjectVersion) -> Problem | None:
        async with semaphore:
            head = await _head_at(store, key, version)
        if isinstance(head, str):
            return Problem(ProblemKind.CHAIN_REWRITTEN, key, head)
        walk = chains.walks.get(writer, {})
        if walk.get(head.seq) == head.link_sha256:
            return None
        if head.seq not in walk:
            current = chains.heads.get(writer)
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

    history.head_versions = len(heads)
    found = await asyncio.gather(*(one(*h) for h in heads))
    # One problem per head is enough to name it; the rest repeat it.
    problems: dict[str, Problem] = {}
    for problem in found:
        if problem is not None:
            problems.setdefault(problem.where, problem)
    return list(problems.values())
