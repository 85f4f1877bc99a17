"""What S3 says about an object's bytes: checksums sent, and the proof read back.

The SHA-256 the archiver sends with a write (base64, or Content-MD5 where the
endpoint refuses checksum headers), and the server's own evidence read from
its answers: ETag, version, and the ``ChecksumSHA256`` it verified. Client-set
metadata is written for people and other tools, never read back as evidence.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER

from archiver.errors import RetriableError
from archiver.storage.base import ObjectProof, StoredObject
from archiver.storage.s3_errors import error_code, rejects_checksum

log = logging.getLogger("archiver.storage")

# Metadata entry (x-amz-meta-sha256) with the hex SHA-256 of the whole object: for
# people and other tools only, never read back as evidence.
SHA256_METADATA = "sha256"


def parse_timestamp(value: Any) -> datetime:
    """A timestamp of an S3 answer, for botocore's parser (``set_parser_defaults``).

    Listings carry ISO 8601 (``2026-11-30T05:00:00.000Z``), which
    ``datetime.fromisoformat`` reads twenty times faster than botocore's
    dateutil-based default; that default still takes the rest (HTTP dates in
    headers, epoch numbers). At a thousand keys a page, the default was a fifth
    of ``get``'s CPU, spent on dates nothing looks at.
    """
    if isinstance(value, str) and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    result: datetime = DEFAULT_TIMESTAMP_PARSER(value)
    return result


def b64(digest: bytes) -> str:
    """A digest as S3's checksum headers carry it (base64)."""
    return base64.b64encode(digest).decode("ascii")


def md5_b64(data: bytes) -> str:
    """The Content-MD5 header of ``data``."""
    return b64(hashlib.md5(data, usedforsecurity=False).digest())


def proof_from(response: Mapping[str, Any]) -> ObjectProof:
    """The server's own evidence in a PutObject, CompleteMultipartUpload or HeadObject answer."""
    etag = response.get("ETag")
    checksum = response.get("ChecksumSHA256")
    kind = response.get("ChecksumType")
    if checksum and not kind:
        kind = "COMPOSITE" if "-" in str(checksum) else "FULL_OBJECT"
    return ObjectProof(
        etag=str(etag).strip('"') if etag else None,
        version_id=str(response["VersionId"]) if response.get("VersionId") else None,
        checksum_sha256=str(checksum) if checksum else None,
        checksum_type=str(kind) if checksum else None,
    )


def proof_as_sent(response: Mapping[str, Any], sent: str | None, where: str) -> ObjectProof:
    """The proof of a PutObject answer; RetriableError when the server reports a
    checksum other than the one ``sent`` (the object is not the bytes we sent)."""
    proof = proof_from(response)
    if proof.checksum_sha256 is not None and sent is not None and proof.checksum_sha256 != sent:
        raise RetriableError(
            f"{where}: the storage reports checksum {proof.checksum_sha256}, not the one sent"
        )
    return proof


def sha256_from_head(response: Mapping[str, Any]) -> str | None:
    """The whole object's hex SHA-256 from a HeadObject answer, if the server computed it.

    Only a full-object ``ChecksumSHA256``, which the server verified when the
    object was written. Client-set metadata (``x-amz-meta-sha256``) is never
    taken: anyone who can write the object can write it. A multipart object's
    checksum is a checksum of the parts' checksums (``...=-3``, type
    COMPOSITE): not the SHA-256 of the bytes, so None.
    """
    checksum = response.get("ChecksumSHA256")
    if not checksum or "-" in checksum or response.get("ChecksumType") == "COMPOSITE":
        return None
    try:
        digest = base64.b64decode(checksum, validate=True)
    except ValueError:
        return None
    return digest.hex() if len(digest) == 32 else None


def stored_object(key: str, full_key: str, response: Mapping[str, Any]) -> StoredObject:
    """A HeadObject answer as a StoredObject."""
    return StoredObject(
        key=key,
        full_key=full_key,
        size=int(response["ContentLength"]),
        sha256=sha256_from_head(response),
        content_type=response.get("ContentType"),
        proof=proof_from(response),
    )


def listed_object(item: Mapping[str, Any], prefix: str) -> StoredObject:
    """A ListObjectsV2 entry under ``prefix`` as a StoredObject (size and ETag, no checksum)."""
    full = str(item["Key"])
    etag = str(item.get("ETag") or "").strip('"') or None
    modified = item.get("LastModified")
    return StoredObject(
        full[len(prefix) :],
        full,
        int(item["Size"]),
        proof=ObjectProof(etag),
        modified=modified if isinstance(modified, datetime) else None,
    )


class ChecksumHeaders:
    """The integrity header each write carries: ``x-amz-checksum-sha256``, which the
    server verifies, until the endpoint refuses it; then ``Content-MD5`` (a warning
    is logged once, and the SHA-256 is checked on our side only)."""

    def __init__(self, description: str) -> None:
        self.sha256 = True
        self._description = description

    def for_body(self, data: bytes, digest: bytes) -> dict[str, str]:
        """The header checking ``data``, whose SHA-256 digest is ``digest``."""
        if self.sha256:
            return {"ChecksumSHA256": b64(digest)}
        return {"ContentMD5": md5_b64(data)}

    def head_mode(self) -> dict[str, str]:
        """HeadObject's ChecksumMode, unless the endpoint refuses checksum headers."""
        return {"ChecksumMode": "ENABLED"} if self.sha256 else {}

    def refused(self, exc: ClientError) -> bool:
        """True (and Content-MD5 from now on) when ``exc`` refuses the checksum headers."""
        if self.sha256 and rejects_checksum(exc):
            self.sha256 = False
            log.warning(
                "%s: the endpoint refuses SHA-256 checksum headers (%s); using Content-MD5, "
                "SHA-256 checked by the archiver only",
                self._description,
                error_code(exc),
            )
            return True
        return False
