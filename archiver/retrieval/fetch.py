"""``get``: a recording to a file, verified; or a time-limited URL to it.

The bytes are streamed into a hidden temporary file beside the destination,
hashed on the way, and renamed onto the destination only when their size and
SHA-256 are the manifest's. On a mismatch the temporary file is removed: no
file is left that could be mistaken for the recording.

In a versioned bucket (Object Lock) a recording overwritten or deleted after
archiving still has its archived version: ``get`` serves the version the
manifest line recorded (legacy lines: the version found to hold its bytes),
saying so when the current object is another, instead of failing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import aiofiles

from archiver.errors import ConfigError
from archiver.manifest.entry import ManifestEntry
from archiver.retrieval.errors import IntegrityError, IntegrityKind
from archiver.storage.base import ObjectStore, StoredObject, VersionedStore

_CHUNK = 1024 * 1024
# Versions of one key looked at for the archived bytes (each may cost a HEAD or a read).
_MAX_VERSIONS = 20


@dataclass(frozen=True, slots=True)
class Fetched:
    """A recording written and verified."""

    path: Path
    size: int
    sha256: str
    version_id: str | None = None  # an earlier version: the current object is not the archived one
    replaced: str | None = None  # what is wrong with the current object, if anything


def storage_key(store: ObjectStore, call: ManifestEntry) -> str:
    """The key of ``call``'s object in ``store``; ConfigError if it is somewhere else."""
    try:
        return store.relative_key(call.object_key)
    except ValueError:
        raise ConfigError(
            f"the manifest puts {call.sip_call_id} at {call.object_key!r}, which is not in "
            f"{store.description}: is ARCHIVER_STORAGE__URL the archive's own?"
        ) from None


def destination(output: Path, key: str) -> Path:
    """The file to write: ``output``, or the object's file name inside it if it is a directory."""
    target = output / PurePosixPath(key).name if output.is_dir() else output
    if not target.parent.is_dir():
        raise ConfigError(f"-o: no such directory: {target.parent}")
    return target


def mismatch(call: ManifestEntry, key: str, size: int, sha256: str | None) -> str | None:
    """Why the stored object is not the manifest's, or None if it is (pure)."""
    if size != call.size:
        return f"{key} has {size} bytes; the manifest records {call.size}"
    if sha256 is not None and sha256 != call.sha256:
        return f"{key} has SHA-256 {sha256}; the manifest records {call.sha256}"
    return None


async def archived_version(
    store: ObjectStore, key: str, call: ManifestEntry, *, trust_single: bool = False
) -> str | None:
    """The version of ``key`` holding the manifest's bytes, in a versioned bucket; else None.

    Versions are tried oldest first (the archived one is normally the first).
    A version's SHA-256 comes from the storage where it keeps one; otherwise
    (multipart uploads) the version is re-read and hashed, unless
    ``trust_single`` and it is the key's only version (nothing ever replaced
    it): it is then taken on its size, its bytes being ``verify``'s business.
    """
    if not isinstance(store, VersionedStore):
        return None
    versions = await store.versions(key)
    candidates = [v for v in versions if not v.delete_marker and v.size == call.size]
    for version in candidates[:_MAX_VERSIONS]:
        head = await store.head_version(key, version.version_id)
        if head is None or head.size != call.size:
            continue
        if head.sha256 is not None:
            if head.sha256 == call.sha256:
                return version.version_id
            continue
        if trust_single and len(versions) == 1:
            return version.version_id
        digest = hashlib.sha256()
        async for chunk in store.read_version(key, version.version_id, _CHUNK):
            digest.update(chunk)
        if digest.hexdigest() == call.sha256:
            return version.version_id
    return None


def recorded_version(store: ObjectStore, call: ManifestEntry) -> str | None:
    """The version the line pinned, when the storage can serve versions."""
    if call.proof is None or call.proof.version_id is None:
        return None
    return call.proof.version_id if isinstance(store, VersionedStore) else None


async def current_state(store: ObjectStore, key: str, call: ManifestEntry) -> str | None:
    """What is wrong with the current object of a pinned line, or None if it is the recorded one."""
    version = call.proof.version_id if call.proof else None
    head = await store.head(key)
    if head is None:
        return f"missing: {key} (recording {call.sip_call_id}) was deleted"
    if head.proof.version_id == version:
        return None
    why = mismatch(call, key, head.size, head.sha256)
    return f"corrupt: {why or f'{key} is version {head.proof.version_id}'}, not version {version}"


async def fetch_to_file(
    store: ObjectStore,
    call: ManifestEntry,
    output: Path,
    before_publish: Callable[[Fetched], Awaitable[None]] | None = None,
    *,
    overwrite: bool = False,
) -> Fetched:
    """Write ``call``'s recording to ``output``, verified; IntegrityError if it cannot be.

    A line that recorded a version (versioned bucket) is served from that
    version, and ``Fetched.replaced`` says when the current object is another
    one. A legacy line whose current object is missing or not the manifest's
    bytes may still have its archived version in a versioned bucket (Object
    Lock keeps it): that version is written instead. ``before_publish`` runs
    once the bytes are verified and before the file appears under its name
    (the audit record): if it raises, no file is left. An existing file is
    replaced only with ``overwrite`` (ConfigError otherwise, before anything is
    read).
    """
    key = storage_key(store, call)
    target = destination(output, key)
    if not overwrite and await asyncio.to_thread(os.path.lexists, target):
        raise ConfigError(f"-o: {target} already exists (--force replaces it)")
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
    try:
        pinned = recorded_version(store, call)
        if pinned is not None and isinstance(store, VersionedStore):
            fetched = await _fetch_pinned(store, call, key, pinned, target, tmp)
        else:
            fetched = await _fetch_current(store, call, key, target, tmp)
        if before_publish is not None:
            await before_publish(fetched)
        await asyncio.to_thread(_publish, tmp, target, overwrite)
    finally:
        await asyncio.to_thread(tmp.unlink, missing_ok=True)
    return fetched


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Give the verified file its name; without ``overwrite``, never over a file that
    appeared meanwhile (a hard link fails if the name is taken)."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise ConfigError(f"-o: {target} already exists (--force replaces it)") from None
    except OSError:
        # A file system without hard links: the check at the start stands.
        os.replace(tmp, target)


async def _fetch_pinned(
    store: ObjectStore, call: ManifestEntry, key: str, version: str, target: Path, tmp: Path
) -> Fetched:
    if not isinstance(store, VersionedStore):
        raise TypeError("a pinned version needs a VersionedStore")
    try:
        size, digest = await _download(store.read_version(key, version, _CHUNK), tmp)
    except KeyError:
        raise IntegrityError(
            IntegrityKind.MISSING,
            f"missing: version {version} of {key} (recording {call.sip_call_id}) is gone; "
            "no file written",
        ) from None
    problem = mismatch(call, key, size, digest)
    if problem is not None:
        raise IntegrityError(IntegrityKind.CORRUPT, f"corrupt: {problem}; no file written")
    replaced = await current_state(store, key, call)
    return Fetched(target, size, digest, version if replaced else None, replaced)


async def _fetch_current(
    store: ObjectStore, call: ManifestEntry, key: str, target: Path, tmp: Path
) -> Fetched:
    kind = IntegrityKind.CORRUPT
    try:
        size, digest = await _download(store.read(key, _CHUNK), tmp)
        problem = mismatch(call, key, size, digest)
        problem = None if problem is None else f"corrupt: {problem}"
    except KeyError:
        kind = IntegrityKind.MISSING
        problem = (
            f"missing: {key} (recording {call.sip_call_id}) is in the manifest "
            "but not in the storage"
        )
    if problem is None:
        return Fetched(target, size, digest)
    # Only a legacy line (no version recorded) goes looking through the versions.
    version = await archived_version(store, key, call) if call.legacy else None
    if version is None or not isinstance(store, VersionedStore):
        raise IntegrityError(kind, f"{problem}; no file written")
    await asyncio.to_thread(tmp.unlink, missing_ok=True)
    size, digest = await _download(store.read_version(key, version, _CHUNK), tmp)
    again = mismatch(call, key, size, digest)
    if again is not None:
        raise IntegrityError(IntegrityKind.CORRUPT, f"corrupt: {again}; no file written")
    return Fetched(target, size, digest, version, problem)


async def _download(chunks: AsyncIterator[bytes], tmp: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    try:
        f = await aiofiles.open(tmp, "xb")
    except OSError as exc:
        raise ConfigError(f"-o: cannot write in {tmp.parent}: {exc.strerror}") from None
    try:
        async for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            await f.write(chunk)
        await f.flush()
        await asyncio.to_thread(os.fsync, f.fileno())
    finally:
        await f.close()
    return size, digest.hexdigest()


@dataclass(frozen=True, slots=True)
class SignedUrl:
    """A URL to a recording; ``version_id`` set when it names a version (``replaced``: not the
    current object)."""

    url: str
    version_id: str | None = None
    replaced: str | None = None  # what is wrong with the current object, if anything


async def presigned_url(store: ObjectStore, call: ManifestEntry, expires: int) -> SignedUrl:
    """A URL to ``call``'s recording valid ``expires`` seconds (S3), or its absolute path (local).

    A line that recorded a version gets a URL to that version (with its
    VersionId), once a HEAD shows the version still carries the recorded
    proof; ``SignedUrl.replaced`` says when the current object is another.
    Otherwise the current object is checked first: its size, the storage's
    checksum and the recorded proof; an object with no server-side checksum (a
    local file) is re-hashed. A legacy line whose object fails may still name
    the archived version of a versioned bucket; else IntegrityError.
    """
    key = storage_key(store, call)
    pinned = recorded_version(store, call)
    if pinned is not None and isinstance(store, VersionedStore):
        head = await store.head_version(key, pinned)
        if head is None:
            raise IntegrityError(
                IntegrityKind.MISSING, f"missing: version {pinned} of {key} is gone"
            )
        refused = _head_problem(call, key, head)
        if refused is not None:
            raise IntegrityError(IntegrityKind.CORRUPT, refused)
        replaced = await current_state(store, key, call)
        return SignedUrl(await store.version_url(key, pinned, expires), pinned, replaced)
    head = await store.head(key)
    kind = IntegrityKind.CORRUPT
    if head is None:
        kind = IntegrityKind.MISSING
        problem: str | None = f"missing: {key} (recording {call.sip_call_id}) is not in the storage"
    else:
        problem = _head_problem(call, key, head)
        if problem is None and head.sha256 is None and not (call.proof and call.proof.proves_bytes):
            problem = await _rehashed_problem(store, call, key)
    if problem is None:
        return SignedUrl(await store.url_for(key, expires))
    version = await archived_version(store, key, call) if call.legacy else None
    if version is None or not isinstance(store, VersionedStore):
        raise IntegrityError(kind, problem)
    return SignedUrl(await store.version_url(key, version, expires), version, problem)


def _head_problem(call: ManifestEntry, key: str, head: StoredObject) -> str | None:
    """The object against the line's size, SHA-256 and recorded proof (pure)."""
    problem = mismatch(call, key, head.size, head.sha256)
    if problem is None and call.proof is not None:
        diffs = call.proof.differences(head.proof)
        problem = f"{key} is not the object archived: {'; '.join(diffs)}" if diffs else None
    return None if problem is None else f"corrupt: {problem}"


async def _rehashed_problem(store: ObjectStore, call: ManifestEntry, key: str) -> str | None:
    digest = hashlib.sha256()
    size = 0
    try:
        async for chunk in store.read(key, _CHUNK):
            digest.update(chunk)
            size += len(chunk)
    except KeyError:
        return f"missing: {key} (recording {call.sip_call_id}) is not in the storage"
    problem = mismatch(call, key, size, digest.hexdigest())
    return None if problem is None else f"corrupt: {problem}"
