"""Where recordings and manifests are written: a local directory or S3."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr, ValidationInfo, field_validator

from archiver.private_files import DEFAULT_FILE_MODE, MODE_PATTERN, parse_mode
from archiver.settings._aws import AwsCredentials
from archiver.settings._values import ENV_PREFIX, http_url

DEFAULT_KEY_TEMPLATE = "recordings/{yyyy}/{mm}/{dd}/{sip_call_id}.{ext}"
# A URL scheme (two letters or more, so that a Windows drive "C:" is a path).
_LOOKS_LIKE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


class StorageSettings(BaseModel):
    """Where recordings and manifests are written."""

    url: str = "./archive"
    endpoint_url: str | None = None
    region: str | None = None
    # S3 addressing: "path" suits MinIO, SeaweedFS and most self-hosted stores.
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    key_template: str = DEFAULT_KEY_TEMPLATE
    # Recordings up to this size are buffered and sent in one PUT; larger ones
    # go up as a multipart upload, part by part as they arrive.
    buffer_bound: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, le=5 * 1024**3)
    part_size: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024, le=5 * 1024**3)
    # Each storage request (each attempt, each part of an upload): seconds to
    # connect; seconds of silence while its answer is awaited or read; and a
    # whole-request deadline of connect + read timeouts plus the body's size at
    # ``min_throughput`` bytes per second (a hung upload is an error in seconds
    # or minutes, not at the transfer's deadline; a large part may still be slow).
    connect_timeout: float = Field(default=10.0, gt=0, le=600)
    read_timeout: float = Field(default=30.0, gt=0, le=3600)
    min_throughput: int = Field(default=64 * 1024, ge=1024)
    # TLS certificate checks towards the storage; turn off only for test endpoints.
    verify_tls: bool = True
    # A recording up to 1 MiB goes up by the lean PutObject (storage/s3_lean.py):
    # the same request, signed by botocore, without the rest of its request path
    # (a third less CPU per recording). False: every write by the full client.
    lean_put: bool = True
    # S3 Object Lock applied at write time to recordings, manifests and audit
    # records: GOVERNANCE or COMPLIANCE, for ``retention_days`` after the write.
    # The bucket must have been created with Object Lock (``archiver check``).
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None
    retention_days: int = Field(default=0, ge=0, le=36500, validate_default=True)
    # Server-side encryption of every object: AES256 (SSE-S3) or aws:kms.
    sse: Literal["AES256", "aws:kms"] | None = None
    # aws:kms only: the key (id, ARN or alias); empty means the AWS-managed key.
    kms_key_id: str | None = Field(default=None, validate_default=True)
    # Storage class of recordings (manifests and indexes stay in the default class).
    storage_class: str | None = None
    # ``get --url``: seconds a presigned URL stays valid (SigV4 allows 7 days at most).
    presign_expiry: int = Field(default=3600, ge=1, le=7 * 86400)
    # A local directory: mode of the files written (folders add x where r is granted).
    file_mode: str = Field(default=DEFAULT_FILE_MODE, pattern=MODE_PATTERN)
    # At start, incomplete uploads / temporary files older than this many seconds
    # are removed; a younger one may be another process's write in progress.
    abandoned_after: float = Field(default=21600.0, ge=60)
    # AWS keys or profile read with the settings (see archiver.settings._aws);
    # private: no ARCHIVER_ variable sets it, and it is never dumped.
    _aws: AwsCredentials = PrivateAttr(default_factory=AwsCredentials)

    @property
    def aws(self) -> AwsCredentials:
        """The AWS credentials read with the settings (empty: botocore's own chain)."""
        return self._aws

    def use_credentials(self, aws: AwsCredentials) -> None:
        """Set the AWS credentials the S3 client is given (done once, by load_settings)."""
        self._aws = aws

    @property
    def file_mode_bits(self) -> int:
        """``file_mode`` as permission bits."""
        return parse_mode(self.file_mode)

    @field_validator("object_lock_mode", mode="before")
    @classmethod
    def _lock_mode(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("retention_days")
    @classmethod
    def _retention_days(cls, value: int, info: ValidationInfo) -> int:
        mode = info.data.get("object_lock_mode")
        if mode is not None and value < 1:
            raise ValueError("must be at least 1 when ARCHIVER_STORAGE__OBJECT_LOCK_MODE is set")
        if mode is None and value > 0:
            raise ValueError("needs ARCHIVER_STORAGE__OBJECT_LOCK_MODE (GOVERNANCE or COMPLIANCE)")
        return value

    @field_validator("sse", mode="before")
    @classmethod
    def _sse(cls, value: object) -> object:
        if isinstance(value, str) and value.lower() in ("aes256", "aws:kms"):
            return "AES256" if value.lower() == "aes256" else "aws:kms"
        return value

    @field_validator("kms_key_id")
    @classmethod
    def _kms_key_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("sse") != "aws:kms":
            raise ValueError("needs ARCHIVER_STORAGE__SSE=aws:kms")
        return value or None

    @field_validator("storage_class", mode="before")
    @classmethod
    def _storage_class(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        name = value.strip().upper()
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            raise ValueError("must be a storage class name such as STANDARD_IA")
        if name in ("GLACIER", "DEEP_ARCHIVE"):
            # Their objects need a restore before any read: get and verify could not work.
            raise ValueError(f"{name} objects cannot be read without a restore; use GLACIER_IR")
        return name

    @property
    def protection_requested(self) -> list[str]:
        """The S3-only protection settings that are set (their variable names)."""
        names = ("object_lock_mode", "sse", "storage_class")
        return [f"{ENV_PREFIX}STORAGE__{n.upper()}" for n in names if getattr(self, n)]

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return http_url(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if value.startswith("s3://"):
            bucket = value[5:].split("/", 1)[0]
            if not bucket:
                raise ValueError("s3:// URL needs a bucket: s3://bucket[/prefix]")
        elif _LOOKS_LIKE_URL.match(value) and not value.startswith("file://"):
            # "s3:/bucket" or "s3:bucket" would otherwise be a local folder named "s3:".
            raise ValueError("must be s3://bucket[/prefix], file://PATH or a local path")
        return value

    @property
    def is_s3(self) -> bool:
        """True for an S3 URL, False for a local directory."""
        return self.url.startswith("s3://")

    @property
    def bucket_and_prefix(self) -> tuple[str, str]:
        """For ``s3://bucket/prefix``: the bucket, and the prefix with a trailing slash."""
        rest = self.url[5:]
        bucket, _, prefix = rest.partition("/")
        prefix = prefix.strip("/")
        return bucket, (prefix + "/" if prefix else "")

    @property
    def local_path(self) -> Path:
        """For a local storage URL: the directory."""
        if self.url.startswith("file://"):
            return Path(self.url[len("file://") :])
        return Path(self.url)
