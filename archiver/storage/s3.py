"""The object store on S3 or an S3-compatible server (aiobotocore).

Every write is conditional (``If-None-Match: *``) and checksummed
(``x-amz-checksum-sha256``, verified by the server), so a retried or
duplicated transfer can neither overwrite a recording nor store corrupted
bytes. When the key is taken, the existing object's SHA-256 decides:
the same bytes are ALREADY_PRESENT, other bytes raise ObjectExistsError.
The one object ever overwritten, a chain head, is replaced with ``If-Match``
on the ETag its writer read: a compare-and-swap between processes.

Endpoints that refuse the checksum headers get ``Content-MD5`` instead (a
warning is logged once); the SHA-256 is then checked on our side and kept in
the ``sha256`` metadata either way.

Beside this module: :mod:`~archiver.storage.s3_errors` (what an error answer
means), :mod:`~archiver.storage.s3_proof` (checksums sent, proof read back),
:mod:`~archiver.storage.s3_upload` (multipart uploads and their clean-up),
:mod:`~archiver.storage.s3_lock` (Object Lock and versions),
:mod:`~archiver.storage.s3_client` (how the client is made),
:mod:`~archiver.storage.s3_existing` (a key already taken: the same bytes or not),
:mod:`~archiver.storage.s3_listing` (listings).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from archiver.errors import RetriableError, StorageError
from archiver.settings import StorageSettings
from archiver.storage.base import (
    LockDate,
    Meta,
    PutOutcome,
    StoredObject,
    Tagged,
    Written,
)
from archiver.storage.keys import validate_key
from archiver.storage.protection import write_params
from archiver.storage.s3_client import open_client
from archiver.storage.s3_errors import (
    DIGEST_CODES,
    MISSING_CODES,
    describe,
    error_code,
    http_status,
    is_conflict,
)
from archiver.storage.s3_existing import compare_existing
from archiver.storage.s3_lean import LeanPut, LeanTaken
from archiver.storage.s3_listing import list_folders, list_keys_by_folder, list_objects
from archiver.storage.s3_lock import S3ObjectLock
from archiver.storage.s3_proof import (
    SHA256_METADATA,
    ChecksumHeaders,
    proof_as_sent,
    stored_object,
)
from archiver.storage.s3_upload import (
    S3Upload,
    abort_incomplete,
    abort_lost_uploads,
)

log = logging.getLogger("archiver.storage")


class S3Store(S3ObjectLock):
    """An :class:`~archiver.storage.base.ObjectStore` on an S3 bucket, under a prefix.

    Use it as an async context manager: the client (and its connection pool
    of ``max_connections``) lives from ``__aenter__`` to ``__aexit__``.
    Credentials come from the standard AWS chain (environment, profile,
    instance role...), read by botocore, never here.
    """

    def __init__(
        self, settings: StorageSettings, *, max_connections: int = 32, max_attempts: int = 5
    ) -> None:
        self._settings = settings
        self._max_attempts = max_attempts
        self._bucket, self._prefix = settings.bucket_and_prefix
        self._max_connections = max_connections
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._lean: LeanPut | None = None
        self.checksums = ChecksumHeaders(self.description)
        self._bucket_checked = False
        # Which credentials the client signs with and where they came from (no secret).
        self.credentials_source: str | None = None

    async def __aenter__(self) -> S3Store:
        try:
            self._client, self.credentials_source = await open_client(
                self._settings,
                self._stack,
                max_attempts=self._max_attempts,
                max_connections=self._max_connections,
            )
            self._lean = await LeanPut.open(self._client, self._bucket, self._settings.lean_put)
        except BotoCoreError as exc:  # a profile that does not exist...
            raise self.error(exc, "open a client") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._client = self._lean = None
        await self._stack.aclose()

    @property
    def description(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self._bucket}/{self._prefix}".rstrip("/")

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The bucket keys' prefix ("" or ending in ``/``)."""
        return self._prefix

    @property
    def client(self) -> Any:
        """The aiobotocore S3 client (open only inside ``async with``)."""
        if self._client is None:
            raise RuntimeError("S3Store used outside 'async with'")
        return self._client

    def full_key(self, key: str) -> str:
        """The bucket key: the prefix, then ``key``."""
        validate_key(key)
        return self._prefix + key

    def relative_key(self, full_key: str) -> str:
        """The key under the prefix; ValueError for a bucket key outside it."""
        if not full_key.startswith(self._prefix):
            raise ValueError(f"{full_key!r} is not under {self.description}")
        key = full_key[len(self._prefix) :]
        validate_key(key)
        return key

    def error(self, exc: BaseException, action: str) -> StorageError:
        """A one-line StorageError naming the cause and the bucket (never a secret)."""
        return StorageError(f"{self.description}: cannot {action}: {describe(exc, self._bucket)}")

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn botocore's errors escaping the block into :meth:`error`'s StorageError.

        Throttling and 5xx answers reach here only once botocore's retries are spent.
        """
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise self.error(exc, action) from exc

    def digest_error(self, key: str, exc: ClientError) -> RetriableError:
        """The server found the bytes do not match their checksum: nothing was stored."""
        return RetriableError(
            f"{self.description}: {key}: the storage refused the bytes, their checksum "
            f"does not match ({error_code(exc)}); nothing written"
        )

    async def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str,
        content_type: str,
        metadata: Meta = None,
        retain_until: LockDate = None,
    ) -> Written:
        """PutObject with If-None-Match and the SHA-256 checksum; see the module docstring."""
        sha256 = sha256.lower()
        params: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": self.full_key(key),
            "Body": data,
            "ContentType": content_type,
            "Metadata": {**(metadata or {}), SHA256_METADATA: sha256},
            "IfNoneMatch": "*",
            # Retention, encryption, storage class: set at write time, as the settings ask.
            **write_params(self._settings, key, datetime.now(UTC), retain_until),
        }
        if not self.checksums.sha256:
            actual = hashlib.sha256(data).hexdigest()
            if actual != sha256:
                raise RetriableError(f"{key}: SHA-256 mismatch ({actual} != {sha256})")
        params.update(self.checksums.for_body(data, bytes.fromhex(sha256)))
        try:  # the same request without botocore's request path; None: the full client's
            resp = await self._lean.put(params["Key"], data, params) if self._lean else None
        except LeanTaken:
            return await self.compare_existing(key, sha256)
        with self.errors(f"write {key}"):
            try:
                resp = resp or await self.client.put_object(**params)
            except ClientError as exc:
                if self.checksums.refused(exc):
                    return await self.put_bytes(
                        key,
                        data,
                        sha256=sha256,
                        content_type=content_type,
                        metadata=metadata,
                        retain_until=retain_until,
                    )
                if is_conflict(exc):
                    return await self.compare_existing(key, sha256)
                if error_code(exc) in DIGEST_CODES:
                    raise self.digest_error(key, exc) from exc
                raise
        proof = proof_as_sent(resp, params.get("ChecksumSHA256"), f"{self.description}: {key}")
        return Written(PutOutcome.CREATED, proof)

    async def compare_existing(self, key: str, sha256: str) -> Written:
        """After a refused conditional write: ALREADY_PRESENT (with proof) or ObjectExistsError."""
        return await compare_existing(self, key, sha256)

    async def read_tagged(self, key: str) -> Tagged | None:
        """GetObject of a small object: its bytes and ETag (its tag); None if absent."""
        with self.errors(f"read {key}"):
            try:
                resp = await self.client.get_object(Bucket=self._bucket, Key=self.full_key(key))
            except ClientError as exc:
                if error_code(exc) in MISSING_CODES:
                    return None
                raise
            try:
                async with resp["Body"] as body:
                    data = await body.read()
            except aiohttp.ClientError as exc:
                raise self.error(exc, f"read {key}") from exc
        return Tagged(data, str(resp["ETag"]))

    async def replace_bytes(
        self, key: str, data: bytes, *, content_type: str, expected: str | None
    ) -> bool:
        """PutObject with If-Match on the ETag read (If-None-Match: * if there was
        none), checksummed like every write; False on 412 (or 409: a write in flight)."""
        params: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": self.full_key(key),
            "Body": data,
            "ContentType": content_type,
            **({"IfMatch": expected} if expected is not None else {"IfNoneMatch": "*"}),
            **write_params(self._settings, key, datetime.now(UTC)),
            **self.checksums.for_body(data, hashlib.sha256(data).digest()),
        }
        with self.errors(f"write {key}"):
            try:
                await self.client.put_object(**params)
            except ClientError as exc:
                if self.checksums.refused(exc):
                    return await self.replace_bytes(
                        key, data, content_type=content_type, expected=expected
                    )
                if is_conflict(exc):
                    return False
                raise
        return True

    async def start_upload(
        self, key: str, *, content_type: str, metadata: Meta = None, retain_until: LockDate = None
    ) -> S3Upload:
        """CreateMultipartUpload with SHA-256 part checksums."""
        params: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": self.full_key(key),
            "ContentType": content_type,
            "Metadata": dict(metadata or {}),
            **write_params(self._settings, key, datetime.now(UTC), retain_until),
        }
        if self.checksums.sha256:
            params["ChecksumAlgorithm"] = "SHA256"
        with self.errors(f"start an upload of {key}"):
            try:
                resp = await self.client.create_multipart_upload(**params)
            except ClientError as exc:
                if self.checksums.refused(exc):
                    return await self.start_upload(
                        key, content_type=content_type, metadata=metadata, retain_until=retain_until
                    )
                raise
        upload_id = str(resp["UploadId"])
        if resp.get("ResponseMetadata", {}).get("RetryAttempts"):
            await abort_lost_uploads(self, params["Key"], keep=upload_id)
        return S3Upload(self, key, upload_id, checksums=self.checksums.sha256)

    async def _check_bucket(self) -> None:
        """Once: tell a missing bucket from a missing object (HEAD 404 says neither)."""
        if self._bucket_checked:
            return
        await self.probe()
        self._bucket_checked = True

    async def head(self, key: str) -> StoredObject | None:
        """HeadObject: size, content type, and the SHA-256 when the storage knows it."""
        full = self.full_key(key)
        with self.errors(f"read {key}"):
            try:
                resp = await self.client.head_object(
                    Bucket=self._bucket, Key=full, **self.checksums.head_mode()
                )
            except ClientError as exc:
                if self.checksums.refused(exc):
                    return await self.head(key)
                if http_status(exc) != 404:
                    raise
                await self._check_bucket()
                return None
        return stored_object(key, full, resp)

    async def read(
        self, key: str, chunk_size: int = 1024 * 1024, *, start: int = 0
    ) -> AsyncIterator[bytes]:
        """GetObject, streamed from byte ``start`` (a Range request); KeyError if absent.

        Close the iterator (``contextlib.aclosing``) if you stop early, or the
        connection stays open until garbage collection.
        """
        ranged = {"Range": f"bytes={start}-"} if start > 0 else {}
        with self.errors(f"read {key}"):
            try:
                resp = await self.client.get_object(
                    Bucket=self._bucket, Key=self.full_key(key), **ranged
                )
            except ClientError as exc:
                if error_code(exc) in MISSING_CODES:
                    raise KeyError(key) from None
                raise
        try:
            async with resp["Body"] as body:
                async for chunk in body.iter_chunks(chunk_size):
                    yield chunk
        except (aiohttp.ClientError, BotoCoreError) as exc:
            raise self.error(exc, f"read {key}") from exc

    async def list(self, prefix: str, *, start_after: str = "") -> AsyncIterator[StoredObject]:
        """ListObjectsV2 under the prefix, after ``start_after`` (``s3_listing.list_objects``)."""
        async for obj in list_objects(self, prefix, start_after):
            yield obj

    def list_keys(self, prefix: str) -> AsyncIterator[str]:
        """The keys, folders listed at once (``s3_listing.list_keys_by_folder``)."""
        return list_keys_by_folder(self, prefix)

    async def list_folders(self, prefix: str) -> Sequence[str]:
        """ListObjectsV2 with ``Delimiter="/"``: the common prefixes right under ``prefix``."""
        return await list_folders(self, prefix)

    async def delete(self, key: str) -> None:
        """DeleteObject (nothing happens if absent)."""
        with self.errors(f"delete {key}"):
            await self.client.delete_object(Bucket=self._bucket, Key=self.full_key(key))

    async def url_for(self, key: str, expires: int) -> str:
        """A presigned GET URL valid for ``expires`` seconds."""
        with self.errors(f"sign a URL for {key}"):
            url = await self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self._bucket, "Key": self.full_key(key)},
                ExpiresIn=expires,
            )
        return str(url)

    async def probe(self) -> None:
        """HEAD the bucket: reachable, credentials accepted, bucket there (StorageError if not)."""
        with self.errors("reach the bucket"):
            try:
                await self.client.head_bucket(Bucket=self._bucket)
            except ClientError as exc:
                if http_status(exc) == 404 or error_code(exc) == "NoSuchBucket":
                    raise StorageError(
                        f"{self.description}: bucket {self._bucket!r} does not exist"
                    ) from exc
                if http_status(exc) != 403:  # 403: no ListBucket right; objects may still work
                    raise

    async def cleanup_incomplete(self, older_than: datetime | None = None) -> int:
        """Abort the multipart uploads under the prefix started before ``older_than`` (all
        if None); how many (:func:`~archiver.storage.s3_upload.abort_incomplete`)."""
        return await abort_incomplete(self, older_than)
