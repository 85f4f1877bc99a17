"""What an S3 error answer means: its code and status, read once here (a leaf module).

The S3 store, its uploads and its Object Lock side all ask these questions of
botocore's ``ClientError``; none parses a message but :func:`rejects_checksum`,
whose answer S3 gives only in words.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

# A conditional write refused: the key is taken (If-None-Match: *), or no longer
# holds the ETag read (If-Match); 409: another conditional write is in flight.
CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
# The server found the bytes do not match the checksum sent with them.
DIGEST_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"})
# No such object, or no such version of it.
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})
NO_SUCH_UPLOAD = "NoSuchUpload"


def http_status(exc: ClientError) -> int:
    """The HTTP status of a botocore error (0 if none)."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def error_code(exc: ClientError) -> str:
    """The S3 error code (``NoSuchKey``...), or "" if the answer had none."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_conflict(exc: ClientError) -> bool:
    """True when a conditional write was refused (see :data:`CONFLICT_CODES`)."""
    return error_code(exc) in CONFLICT_CODES or http_status(exc) == 412


def rejects_checksum(exc: ClientError) -> bool:
    """True when the endpoint refuses the flexible-checksum headers themselves."""
    message = str(exc.response.get("Error", {}).get("Message", "")).lower()
    refused = error_code(exc) in {"InvalidArgument", "InvalidRequest", "NotImplemented"}
    return refused and "checksum" in message


def describe(exc: BaseException, bucket: str) -> str:
    """The cause of a failed request on ``bucket``, in one line that names no secret."""
    named = f"bucket {bucket!r}"
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        if code == "NoSuchBucket":
            return f"{named} does not exist"
        if code == "InvalidAccessKeyId":
            return f"the access key ID is unknown to the storage of {named}"
        if code == "SignatureDoesNotMatch":
            return "the secret access key does not match the access key ID"
        if code in {"AccessDenied", "AllAccessDisabled"} or status == 403:
            return f"access denied to {named}: check the credentials and the bucket policy"
        message = exc.response.get("Error", {}).get("Message") or "no message"
        return f"{code or status}: {message}"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
    if isinstance(exc, BotoCoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
