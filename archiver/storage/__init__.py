"""Object storage: the protocol, its two implementations, key layout and audio sniffing.

The pipeline and retrieval see only :class:`ObjectStore`; the CLI opens one
with :func:`open_store`, once, and passes it down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from archiver.errors import ConfigError
from archiver.settings import StorageSettings
from archiver.storage.audio import CONTENT_TYPES, sniff
from archiver.storage.base import (
    BucketProtection,
    LockingStore,
    ObjectExistsError,
    ObjectProof,
    ObjectProtection,
    ObjectStore,
    ObjectVersion,
    PutOutcome,
    StoredObject,
    Tagged,
    Upload,
    VersionedStore,
    Written,
)
from archiver.storage.keys import render_key, sanitize, validate_key, validate_template
from archiver.storage.local import LocalStore

__all__ = [
    "CONTENT_TYPES",
    "BucketProtection",
    "LockingStore",
    "ObjectProtection",
    "ObjectVersion",
    "VersionedStore",
    "LocalStore",
    "ObjectExistsError",
    "ObjectProof",
    "ObjectStore",
    "PutOutcome",
    "StoredObject",
    "Tagged",
    "Upload",
    "Written",
    "open_store",
    "render_key",
    "sanitize",
    "sniff",
    "validate_key",
    "validate_template",
]


@asynccontextmanager
async def open_store(
    settings: StorageSettings, *, max_connections: int = 32, max_attempts: int = 5
) -> AsyncIterator[ObjectStore]:
    """The store ``settings.url`` names, open for the ``async with`` block.

    S3 (``s3://``): one aiobotocore client with a pool of ``max_connections``
    (size it to the transfer concurrency), closed on exit. Otherwise a
    directory, created on the first write.

    Raises ConfigError for S3-only protection settings (Object Lock, SSE,
    storage class) on a directory: silently writing unprotected files would
    be worse than refusing.
    """
    if settings.is_s3:
        # Imported here so that the local store and the pure modules do not
        # pay for loading botocore.
        from archiver.storage.s3 import S3Store

        async with S3Store(
            settings, max_connections=max_connections, max_attempts=max_attempts
        ) as store:
            yield store
    else:
        if settings.protection_requested:
            names = ", ".join(settings.protection_requested)
            raise ConfigError(
                f"{names}: needs S3 (Object Lock, encryption and storage classes are S3 "
                f"features); {settings.url} is a local directory"
            )
        yield LocalStore(settings.local_path, file_mode=settings.file_mode_bits)
