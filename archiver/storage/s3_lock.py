"""S3 Object Lock and versions: the optional capabilities of the S3 store.

In a versioned bucket (every Object Lock bucket is one) a key can gain a newer
version or a delete marker after archiving, while the archived version stays
(locked). These methods let retrieval find that version, read it, sign a URL
to it and put a legal hold on it, rather than on whatever is current.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from archiver.errors import StorageError
from archiver.storage.base import BucketProtection, ObjectProtection, ObjectVersion, StoredObject
from archiver.storage.s3_errors import MISSING_CODES, error_code, http_status
from archiver.storage.s3_proof import ChecksumHeaders, stored_object

_NO_LOCK_CODES = frozenset(
    {"ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration"}
)


class S3ObjectLock:
    """Mixed into :class:`~archiver.storage.s3.S3Store`: LockingStore and VersionedStore."""

    if TYPE_CHECKING:
        _bucket: str
        _prefix: str

        @property
        def client(self) -> Any: ...

        def full_key(self, key: str) -> str: ...

        def relative_key(self, full_key: str) -> str: ...

        def errors(self, action: str) -> AbstractContextManager[None]: ...

        def error(self, exc: BaseException, action: str) -> StorageError: ...

        checksums: ChecksumHeaders

    def _version(self, version_id: str | None) -> dict[str, str]:
        return {"VersionId": version_id} if version_id else {}

    async def bucket_protection(self) -> BucketProtection:
        """GetBucketVersioning and GetObjectLockConfiguration."""
        with self.errors("read the bucket's versioning and Object Lock"):
            versioning = await self.client.get_bucket_versioning(Bucket=self._bucket)
            try:
                lock = await self.client.get_object_lock_configuration(Bucket=self._bucket)
            except ClientError as exc:
                if error_code(exc) not in _NO_LOCK_CODES:
                    raise
                lock = {}
        config = lock.get("ObjectLockConfiguration") or {}
        default = (config.get("Rule") or {}).get("DefaultRetention") or {}
        return BucketProtection(
            versioning=str(versioning.get("Status") or "Disabled"),
            object_lock=config.get("ObjectLockEnabled") == "Enabled",
            default_mode=default.get("Mode"),
            default_days=default.get("Days"),
            default_years=default.get("Years"),
        )

    async def _head(self, key: str, version_id: str | None) -> dict[str, Any] | None:
        with self.errors(f"read {key}"):
            try:
                resp: dict[str, Any] = await self.client.head_object(
                    Bucket=self._bucket,
                    Key=self.full_key(key),
                    **self.checksums.head_mode(),
                    **self._version(version_id),
                )
            except ClientError as exc:
                if self.checksums.refused(exc):
                    return await self._head(key, version_id)
                if http_status(exc) in (404, 405) or error_code(exc) in MISSING_CODES:
                    return None  # 405: the version is a delete marker
                raise
        return resp

    async def protection(self, key: str, version_id: str | None = None) -> ObjectProtection | None:
        """Retention and legal hold of a version (the current one by default), from HeadObject.

        S3 omits them from the answer without the GetObjectRetention and
        GetObjectLegalHold permissions: they then read as "none".
        """
        resp = await self._head(key, version_id)
        if resp is None:
            return None
        until = resp.get("ObjectLockRetainUntilDate")
        return ObjectProtection(
            mode=resp.get("ObjectLockMode"),
            retain_until=until.astimezone(UTC) if isinstance(until, datetime) else None,
            legal_hold=resp.get("ObjectLockLegalHoldStatus") == "ON",
            version_id=resp.get("VersionId"),
        )

    async def set_legal_hold(self, key: str, on: bool, version_id: str | None = None) -> None:
        """PutObjectLegalHold on a version (the current one by default); KeyError if absent."""
        with self.errors(f"set the legal hold of {key}"):
            try:
                await self.client.put_object_legal_hold(
                    Bucket=self._bucket,
                    Key=self.full_key(key),
                    LegalHold={"Status": "ON" if on else "OFF"},
                    **self._version(version_id),
                )
            except ClientError as exc:
                if error_code(exc) in MISSING_CODES or http_status(exc) == 405:
                    raise KeyError(key) from None
                raise

    async def delete_version(self, key: str, version_id: str) -> None:
        """DeleteObject of one version (or delete marker), never bypassing a lock: a
        locked or held version makes the storage refuse (StorageError)."""
        with self.errors(f"delete version {version_id} of {key}"):
            await self.client.delete_object(
                Bucket=self._bucket, Key=self.full_key(key), VersionId=version_id
            )

    async def versions(self, key: str) -> list[ObjectVersion]:
        """Every version of ``key``, delete markers included, oldest first."""
        full = self.full_key(key)
        found: list[ObjectVersion] = []
        paginator = self.client.get_paginator("list_object_versions")
        with self.errors(f"list the versions of {key}"):
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=full):
                for item in page.get("Versions", []):
                    if item["Key"] == full:
                        found.append(_version_of(item, delete_marker=False))
                for item in page.get("DeleteMarkers", []):
                    if item["Key"] == full:
                        found.append(_version_of(item, delete_marker=True))
        return sorted(found, key=lambda v: v.last_modified or datetime.min.replace(tzinfo=UTC))

    async def all_versions(self, prefix: str) -> AsyncIterator[tuple[str, ObjectVersion]]:
        """Every version and delete marker of every key under ``prefix``: (key, version),
        a page (1,000) at a time, in key order (a key's versions, newest first, then its
        delete markers: the entries of one key come one after the other)."""
        paginator = self.client.get_paginator("list_object_versions")
        with self.errors(f"list the versions under {prefix}"):
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix + prefix):
                versions = [(i, False) for i in page.get("Versions", [])]
                markers = [(i, True) for i in page.get("DeleteMarkers", [])]
                # Each key's versions and markers together (a page lists them apart).
                for item, marker in heapq.merge(versions, markers, key=lambda e: str(e[0]["Key"])):
                    yield self.relative_key(item["Key"]), _version_of(item, delete_marker=marker)

    async def head_version(self, key: str, version_id: str) -> StoredObject | None:
        """Size, stored SHA-256 and proof of one version; None if absent or a delete marker."""
        resp = await self._head(key, version_id)
        if resp is None:
            return None
        return stored_object(key, self.full_key(key), resp)

    async def read_version(
        self, key: str, version_id: str, chunk_size: int = 1024 * 1024, *, start: int = 0
    ) -> AsyncIterator[bytes]:
        """GetObject of one version, streamed from byte ``start`` (a Range request);
        KeyError if absent."""
        ranged = {"Range": f"bytes={start}-"} if start > 0 else {}
        with self.errors(f"read {key}"):
            try:
                resp = await self.client.get_object(
                    Bucket=self._bucket, Key=self.full_key(key), VersionId=version_id, **ranged
                )
            except ClientError as exc:
                if error_code(exc) in MISSING_CODES or http_status(exc) == 405:
                    raise KeyError(key) from None
                raise
        try:
            async with resp["Body"] as body:
                async for chunk in body.iter_chunks(chunk_size):
                    yield chunk
        except (aiohttp.ClientError, BotoCoreError) as exc:
            raise self.error(exc, f"read {key}") from exc

    async def version_url(self, key: str, version_id: str, expires: int) -> str:
        """A presigned GET URL to one version, valid ``expires`` seconds."""
        with self.errors(f"sign a URL for {key}"):
            url = await self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": self.full_key(key), "VersionId": version_id},
                ExpiresIn=expires,
            )
        return str(url)


def _version_of(item: dict[str, Any], *, delete_marker: bool) -> ObjectVersion:
    modified = item.get("LastModified")
    return ObjectVersion(
        version_id=str(item["VersionId"]),
        size=0 if delete_marker else int(item.get("Size", 0)),
        is_latest=bool(item.get("IsLatest")),
        last_modified=modified if isinstance(modified, datetime) else None,
        delete_marker=delete_marker,
        etag=str(item.get("ETag") or "").strip('"') or None,
    )
