"""``get``: a recording to a file, verified; or a time-limited URL to it.

The bytes are streamed into a hidden temporary file beside the destination,
hashed on the way, and renamed onto the destination only when their size and
SHA-256 are the manifest's. On a mismatch the temporary file is removed: no
file is left that could be mistaken for the recording.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import aiofiles

from archiver.errors import ConfigError
from archiver.retrieval.errors import IntegrityError
from archiver.retrieval.records import ArchivedCall
from archiver.storage.base import ObjectStore

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    """A recording written and verified."""

    path: Path
    size: int
    sha256: str


def storage_key(store: ObjectStore, call: ArchivedCall) -> str:
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


def mismatch(call: ArchivedCall, key: str, size: int, sha256: str | None) -> str | None:
    """Why the stored object is not the manifest's, or None if it is (pure)."""
    if size != call.size:
        return f"{key} has {size} bytes; the manifest records {call.size}"
    if sha256 is not None and sha256 != call.sha256:
        return f"{key} has SHA-256 {sha256}; the manifest records {call.sha256}"
    return None


async def fetch_to_file(
    store: ObjectStore,
    call: ArchivedCall,
    output: Path,
    before_publish: Callable[[Fetched], Awaitable[None]] | None = None,
) -> Fetched:
    """Write ``call``'s recording to ``output``, verified; IntegrityError if it cannot be.

    ``before_publish`` runs once the bytes are verified and before the file
    appears under its name (the audit record): if it raises, no file is left.
    """
    key = storage_key(store, call)
    target = destination(output, key)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
    try:
        size, digest = await _download(store, key, tmp)
        problem = mismatch(call, key, size, digest)
        if problem is not None:
            raise IntegrityError(f"corrupt: {problem}; no file written")
        fetched = Fetched(target, size, digest)
        if before_publish is not None:
            await before_publish(fetched)
        await asyncio.to_thread(os.replace, tmp, target)
    except KeyError:
        raise IntegrityError(
            f"missing: {key} (recording {call.sip_call_id}) is in the manifest "
            "but not in the storage; no file written"
        ) from None
    finally:
        await asyncio.to_thread(tmp.unlink, missing_ok=True)
    return fetched


async def _download(store: ObjectStore, key: str, tmp: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    try:
        f = await aiofiles.open(tmp, "xb")
    except OSError as exc:
        raise ConfigError(f"-o: cannot write in {tmp.parent}: {exc.strerror}") from None
    try:
        async for chunk in store.read(key, _CHUNK):
            digest.update(chunk)
            size += len(chunk)
            await f.write(chunk)
        await f.flush()
        await asyncio.to_thread(os.fsync, f.fileno())
    finally:
        await f.close()
    return size, digest.hexdigest()


async def presigned_url(store: ObjectStore, call: ArchivedCall, expires: int) -> str:
    """A URL to ``call``'s recording valid ``expires`` seconds (S3), or its absolute path (local).

    The object is checked first (one HEAD): a missing object, or one whose
    size or stored SHA-256 differs from the manifest's, raises IntegrityError.
    """
    key = storage_key(store, call)
    head = await store.head(key)
    if head is None:
        raise IntegrityError(f"missing: {key} (recording {call.sip_call_id}) is not in the storage")
    problem = mismatch(call, key, head.size, head.sha256)
    if problem is not None:
        raise IntegrityError(f"corrupt: {problem}")
    return await store.url_for(key, expires)
