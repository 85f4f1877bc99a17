"""What each S3 write carries for retention, encryption and storage class (pure).

Which objects get what:

- **Object Lock retention** (mode + retain-until = write time + retention
  days): the evidence, i.e. recordings, manifest objects and audit records.
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

from archiver.settings import StorageSettings

ARCHIVER_AREA = "_archiver/"
AUDIT_AREA = "_archiver/audit/"
MANIFEST_AREA = "manifests/"


def is_evidence(key: str) -> bool:
    """True for a key retention must protect: recordings, manifests, audit records."""
    return not key.startswith(ARCHIVER_AREA) or key.startswith(AUDIT_AREA)


def is_recording(key: str) -> bool:
    """True for a recording's key (outside ``manifests/`` and ``_archiver/``)."""
    return not key.startswith((ARCHIVER_AREA, MANIFEST_AREA))


def retain_until(settings: StorageSettings, now: datetime) -> datetime | None:
    """When an object written at ``now`` may be deleted, or None without a lock mode."""
    if settings.object_lock_mode is None:
        return None
    return now + timedelta(days=settings.retention_days)


def write_params(settings: StorageSettings, key: str, now: datetime) -> dict[str, Any]:
    """The PutObject / CreateMultipartUpload parameters for ``key`` written at ``now``."""
    params: dict[str, Any] = {}
    until = retain_until(settings, now)
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
