"""What each S3 write carries for retention, encryption and storage class (pure).

Which objects get what:

- **Object Lock retention** (mode + retain-until = write time + retention
  days): the evidence, i.e. recordings, manifest objects, their chain (links,
  tokens, every version of the heads), rollups, tombstones and audit records.
  Not the rest of ``_archiver/`` (index pointers can be rebuilt from the
  manifests; ``check`` objects are deleted again), so nothing the archiver must
  remove is ever locked.
- **Server-side encryption**: every object.
- **Storage class**: recordings only. Manifests and index pointers are small
  and read on every lookup; an infrequent-access class would bill each of them
  at its minimum size and charge for every read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from archiver.errors import ConfigError
from archiver.settings import ENV_PREFIX, StorageSettings
from archiver.storage.base import BucketProtection
from archiver.storage.layout import (
    ARCHIVER_PREFIX,
    CHAIN_PREFIX,
    MANIFEST_PREFIX,
    ROLLUP_PREFIX,
    TOMBSTONE_PREFIX,
)

AUDIT_AREA = "_archiver/audit/"


def is_evidence(key: str) -> bool:
    """True for a key retention must protect: recordings, manifests, the chain (links,
    tokens, heads), audit records.

    A chain head is overwritten as the chain grows, but in a versioned bucket each
    head stays as a version: locked, that history (heads only move forward) is
    evidence ``verify`` reads, which no one can delete before its retention ends.
    """
    if key.startswith((CHAIN_PREFIX, TOMBSTONE_PREFIX, ROLLUP_PREFIX)):
        return True
    return not key.startswith(ARCHIVER_PREFIX) or key.startswith(AUDIT_AREA)


def is_recording(key: str) -> bool:
    """True for a recording's key (outside ``manifests/`` and ``_archiver/``)."""
    return not key.startswith((ARCHIVER_PREFIX, MANIFEST_PREFIX))


def retain_until(settings: StorageSettings, now: datetime) -> datetime | None:
    """When an object written at ``now`` may be deleted, or None without a lock mode."""
    if settings.object_lock_mode is None:
        return None
    return now + timedelta(days=settings.retention_days)


# A rule's date already past (a backfill of old calls) still locks the object this
# long: S3 takes only a future date, and verify gets its day before a disposal.
LEAST_LOCK = timedelta(days=1)


def write_params(
    settings: StorageSettings, key: str, now: datetime, rule_until: datetime | None = None
) -> dict[str, Any]:
    """The PutObject / CreateMultipartUpload parameters for ``key`` written at ``now``;
    ``rule_until`` (a recording's retention rule's end) replaces the default span."""
    params: dict[str, Any] = {}
    until = retain_until(settings, now)
    if until is not None and rule_until is not None:
        until = max(rule_until, now + LEAST_LOCK)
    if until is not None and is_evidence(key):
        params["ObjectLockMode"] = settings.object_lock_mode
        params["ObjectLockRetainUntilDate"] = until
    if settings.sse is not None:
        params["ServerSideEncryption"] = settings.sse
        if settings.sse == "aws:kms" and settings.kms_key_id:
            params["SSEKMSKeyId"] = settings.kms_key_id
    if settings.storage_class and is_recording(key):
        params["StorageClass"] = settings.storage_class
    return params


def assess(settings: StorageSettings, bucket: BucketProtection) -> str:
    """What the bucket protects, for ``archiver check`` (pure).

    Raises ConfigError when the settings ask for retention the bucket cannot
    enforce: writes would fail, or (worse) a deployment would believe its
    recordings locked when they are not.
    """
    if settings.object_lock_mode is not None and not bucket.object_lock:
        raise ConfigError(
            f"{ENV_PREFIX}STORAGE__OBJECT_LOCK_MODE={settings.object_lock_mode}: the bucket has "
            "no Object Lock, so it cannot honour it (Object Lock is enabled when a bucket is "
            "created, or on request to the provider for an existing one)"
        )
    parts = [f"versioning {bucket.versioning.lower()}"]
    if bucket.object_lock:
        default = ""
        if bucket.default_mode:
            span = f"{bucket.default_days} days" if bucket.default_days else ""
            span = span or (f"{bucket.default_years} years" if bucket.default_years else "")
            default = f", bucket default retention {bucket.default_mode} {span}".rstrip()
        parts.append(f"Object Lock enabled{default}")
        if settings.object_lock_mode is not None:
            parts.append(
                f"recordings, manifests and audit records locked {settings.object_lock_mode} "
                f"for {settings.retention_days} days after writing"
            )
        elif not bucket.default_mode:
            parts.append(
                "WARNING: no retention is set, so nothing is locked: set "
                f"{ENV_PREFIX}STORAGE__OBJECT_LOCK_MODE and {ENV_PREFIX}STORAGE__RETENTION_DAYS"
            )
    else:
        parts.append("no Object Lock (retention and legal holds unavailable)")
        if bucket.versioning != "Enabled":
            parts.append("an overwritten or deleted object cannot be recovered")
    parts.append(f"encryption {settings.sse or 'the bucket default'}")
    if settings.storage_class:
        parts.append(f"recordings stored as {settings.storage_class}")
    return "; ".join(parts)
