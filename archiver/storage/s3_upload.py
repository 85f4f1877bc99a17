"""S3 multipart uploads: a write too large to buffer, invisible until complete, and
the clean-up of the uploads a crash or a lost answer left behind."""

from __future__ import annotations

import hashlib
import io
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from archiver.errors import RetriableError
from archiver.storage.base import PutOutcome, Written
from archiver.storage.s3_errors import DIGEST_CODES, NO_SUCH_UPLOAD, error_code, is_conflict
from archiver.storage.s3_proof import b64, md5_b64, proof_from

if TYPE_CHECKING:
    from archiver.storage.s3 import S3Store

log = logging.getLogger("archiver.storage")


async def abort_lost_uploads(store: S3Store, full_key: str, keep: str) -> None:
    """Abort the uploads of ``full_key`` other than ``keep``.

    Called when the client had to retry a CreateMultipartUpload: an attempt
    whose answer was lost may have created an upload whose id never reached us,
    and nothing else would ever abort it. An upload of the same key by another
    transfer in flight (two CDRs sharing a sip_call_id) may go too: that
    transfer then sees NoSuchUpload and is retried. A failure here is only
    logged: the next run's cleanup_incomplete catches what is left.
    """
    client = store.client
    try:
        resp = await client.list_multipart_uploads(Bucket=store.bucket, Prefix=full_key)
        for upload in resp.get("Uploads", []):
            if upload["Key"] == full_key and upload["UploadId"] != keep:
                await client.abort_multipart_upload(
                    Bucket=store.bucket, Key=full_key, UploadId=upload["UploadId"]
                )
                log.info("%s: aborted a lost upload of %s", store.description, full_key)
    except (ClientError, BotoCoreError) as exc:
        log.warning(
            "%s: could not look for lost uploads of %s: %s", store.description, full_key, exc
        )


class S3Upload:
    """A :class:`~archiver.storage.base.Upload` as an S3 multipart upload."""

    def __init__(self, store: S3Store, key: str, upload_id: str, *, checksums: bool) -> None:
        self._store = store
        self._key = key
        self._full = store.full_key(key)
        self.upload_id = upload_id
        self._checksums = checksums
        self._parts: list[dict[str, Any]] = []
        # The SHA-256 of the parts' SHA-256s: the COMPOSITE checksum the server
        # must report for the whole upload (its proof, recorded in the manifest).
        self._composite = hashlib.sha256()
        self._digest = hashlib.sha256()
        self._size = 0
        self._finished = False

    async def write_part(self, data: bytes) -> None:
        """UploadPart with its SHA-256 (or MD5) checked by the server; aborts on failure."""
        if self._finished:
            raise RuntimeError(f"upload of {self._key} already finished")
        part: dict[str, Any] = {"PartNumber": len(self._parts) + 1}
        params: dict[str, Any] = {"Body": data, "PartNumber": part["PartNumber"]}
        part_digest = hashlib.sha256(data).digest()
        if self._checksums:
            params["ChecksumSHA256"] = part["ChecksumSHA256"] = b64(part_digest)
        else:
            params["ContentMD5"] = md5_b64(data)
        with self._store.errors(f"upload a part of {self._key}"):
            try:
                resp = await self._store.client.upload_part(
                    Bucket=self._store.bucket, Key=self._full, UploadId=self.upload_id, **params
                )
            except (ClientError, BotoCoreError) as exc:
                await self.abort()
                if isinstance(exc, ClientError) and error_code(exc) in DIGEST_CODES:
                    raise self._store.digest_error(self._key, exc) from exc
                if isinstance(exc, ClientError) and error_code(exc) == NO_SUCH_UPLOAD:
                    raise self._vanished() from exc
                raise
        part["ETag"] = resp["ETag"]
        self._parts.append(part)
        self._composite.update(part_digest)
        self._digest.update(data)
        self._size += len(data)

    @property
    def composite_checksum(self) -> str:
        """The COMPOSITE ChecksumSHA256 of the parts sent so far, as S3 writes it."""
        return f"{b64(self._composite.digest())}-{len(self._parts)}"

    async def complete(self, sha256: str, size: int) -> Written:
        """CompleteMultipartUpload with If-None-Match; on a taken key, compare and abort."""
        if self._finished:
            raise RuntimeError(f"upload of {self._key} already finished")
        sha256 = sha256.lower()
        if (self._digest.hexdigest(), self._size) != (sha256, size):
            await self.abort()
            raise RetriableError(
                f"{self._key}: the parts sent ({self._size} bytes, SHA-256 "
                f"{self._digest.hexdigest()}) are not the declared {size} bytes, {sha256}"
            )
        if not self._parts:
            await self.write_part(b"")  # S3 completes no upload without a part
        with self._store.errors(f"complete the upload of {self._key}"):
            try:
                resp = await self._store.client.complete_multipart_upload(
                    Bucket=self._store.bucket,
                    Key=self._full,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": self._parts},
                    IfNoneMatch="*",
                )
            except (ClientError, BotoCoreError) as exc:
                # A refused complete leaves the upload (and its parts) in place.
                await self.abort()
                if isinstance(exc, ClientError) and is_conflict(exc):
                    return await self._store.compare_existing(self._key, sha256)
                if isinstance(exc, ClientError) and error_code(exc) == NO_SUCH_UPLOAD:
                    # Completed by an attempt whose answer was lost (the client
                    # retried), or aborted behind our back: the object tells which.
                    if await self._store.head(self._key) is None:
                        raise self._vanished() from exc
                    return await self._store.compare_existing(self._key, sha256)
                raise
        self._finished = True
        proof = proof_from(resp)
        if proof.checksum_sha256 is not None and proof.checksum_sha256 != self.composite_checksum:
            # Each part's SHA-256 was checked by the server: a different composite
            # means the object is not the parts we sent, whatever its ETag.
            raise RetriableError(
                f"{self._store.description}: {self._key}: the storage reports composite "
                f"checksum {proof.checksum_sha256}, not {self.composite_checksum}"
            )
        return Written(PutOutcome.CREATED, proof)

    def _vanished(self) -> RetriableError:
        """The upload is gone (a lifecycle rule, a cleanup): this recording is tried again."""
        return RetriableError(
            f"{self._store.description}: {self._key}: the multipart upload was aborted "
            "before it completed; nothing written"
        )

    async def abort(self) -> None:
        """AbortMultipartUpload; safe twice. A failure is logged: cleanup_incomplete catches it."""
        if self._finished:
            return
        self._finished = True
        try:
            await self._store.client.abort_multipart_upload(
                Bucket=self._store.bucket, Key=self._full, UploadId=self.upload_id
            )
        except (ClientError, BotoCoreError) as exc:
            gone = isinstance(exc, ClientError) and error_code(exc) in {NO_SUCH_UPLOAD, "404"}
            if not gone:
                # Not raised: it would hide the failure that made us abort.
                log.warning("%s: abort of %s failed: %s", self._store.description, self._key, exc)


async def abort_incomplete(store: S3Store, older_than: datetime | None) -> int:
    """Abort the multipart uploads under the store's prefix started before
    ``older_than`` (every one if None); returns how many.

    The archiver is the only writer under its prefix, so any upload there
    is one of ours; a younger one may be another process's, still at work.
    """
    client, bucket = store.client, store.bucket
    prefix = store.prefix
    paginator = client.get_paginator("list_multipart_uploads")
    uploads: list[tuple[str, str]] = []
    with store.errors("abort incomplete uploads"):
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            uploads += [
                (u["Key"], u["UploadId"])
                for u in page.get("Uploads", [])
                if older_than is None or _started_before(u.get("Initiated"), older_than)
            ]
        for full, upload_id in uploads:
            await client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
    return len(uploads)


def _started_before(initiated: object, bound: datetime) -> bool:
    """Whether an upload's ``Initiated`` time is before ``bound`` (an upload with
    no usable time is left alone: it may be at work)."""
    if not isinstance(initiated, datetime):
        return False
    if initiated.tzinfo is None:
        initiated = initiated.replace(tzinfo=UTC)
    return initiated < bound


# aiohttp sends bytes up to this size in one write; above it, it warns and wants a file.
_ONE_WRITE = 1024 * 1024


def file_like_when_large(params: dict[str, Any], **_: Any) -> None:
    """botocore's body hook for PutObject and UploadPart, instead of its own.

    botocore wraps every bytes body in a BytesIO (to rewind it for a retry,
    which bytes need not), which aiohttp then reads back in 64 KiB copies: a
    tenth of the CPU of a 512 KiB recording's PUT. A body aiohttp sends in one
    write stays bytes; a larger one is wrapped, as botocore would.
    """
    body = params.get("Body")
    if isinstance(body, bytes | bytearray) and len(body) > _ONE_WRITE:
        params["Body"] = io.BytesIO(body)
