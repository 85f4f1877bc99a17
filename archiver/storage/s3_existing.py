"""A key already taken on S3: are the bytes there the ones we meant to write?

A conditional write refused (412, or 409 while another write is in flight)
is settled by the SHA-256 of what the key holds: the same bytes are
ALREADY_PRESENT (with the storage's proof), other bytes ObjectExistsError.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from archiver.errors import RetriableError
from archiver.storage.base import ObjectExistsError, PutOutcome, StoredObject, Written

if TYPE_CHECKING:
    from archiver.storage.s3 import S3Store


async def compare_existing(store: S3Store, key: str, sha256: str) -> Written:
    """After a refused conditional write: ALREADY_PRESENT (with proof) or ObjectExistsError."""
    obj = await store.head(key)
    existing = None if obj is None else await stored_sha256(store, obj)
    if obj is None or existing is None:
        # 409 ConditionalRequestConflict: another write to the key is in flight.
        raise RetriableError(f"{store.description}: {key}: a concurrent write is in progress")
    if existing == sha256.lower():
        return Written(PutOutcome.ALREADY_PRESENT, obj.proof)
    raise ObjectExistsError(key, existing)


async def stored_sha256(store: S3Store, obj: StoredObject) -> str | None:
    """The stored object's SHA-256: the server's full-object checksum, else by reading it.

    Read back when the object is pinned by a version (the bytes read are
    the ones the proof describes), else the current object.
    """
    if obj.sha256 is not None:
        return obj.sha256
    digest = hashlib.sha256()
    version = obj.proof.version_id
    chunks = store.read_version(obj.key, version) if version else store.read(obj.key)
    try:
        async for chunk in chunks:
            digest.update(chunk)
    except KeyError:
        return None
    return digest.hexdigest()
