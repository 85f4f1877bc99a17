"""The audit trail: one new object per retrieval under ``_archiver/audit/``, never rewritten.

Key: ``_archiver/audit/YYYY/MM/DD/<UTC time>-<action>-<random>.json`` (UTC
date), so records list in time order and a day's records are one prefix.
Each record says who (the configured operator, else the OS user and host),
what (the action and its target), when (UTC) and the result. Where Object
Lock is configured, audit records are locked like recordings.

Retrievals fail closed: ``get`` and ``search`` exports deliver nothing when
their record cannot be written; a failed retrieval is recorded too.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import secrets
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from archiver import __version__
from archiver.errors import ArchiverError
from archiver.storage.base import ObjectStore

log = logging.getLogger("archiver.audit")

AUDIT_PREFIX = "_archiver/audit/"


def os_identity() -> str:
    """``user@host`` of this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def operator_name(configured: str | None) -> str:
    """Who is retrieving: the configured operator, else the OS user and host."""
    return configured.strip() if configured and configured.strip() else os_identity()


def audit_key(action: str, now: datetime, token: str) -> str:
    """Where a record of ``action`` at ``now`` goes (pure; ``token`` makes it unique)."""
    utc = now.astimezone(UTC)
    return f"{AUDIT_PREFIX}{utc:%Y/%m/%d}/{utc:%Y%m%dT%H%M%S.%f}Z-{action}-{token}.json"


def audit_record(
    *,
    action: str,
    operator: str,
    target: Mapping[str, Any],
    result: str,
    now: datetime,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One audit record (pure)."""
    return {
        "at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "operator": operator,
        "os_user": os_identity(),
        "action": action,
        "target": dict(target),
        "result": result,
        "details": dict(details or {}),
        "archiver_version": __version__,
    }


class AuditTrail:
    """Appends audit records to one store, as one operator."""

    def __init__(self, store: ObjectStore, operator: str | None) -> None:
        self._store = store
        self.operator = operator_name(operator)

    async def record(
        self,
        action: str,
        target: Mapping[str, Any],
        result: str,
        details: Mapping[str, Any] | None = None,
    ) -> str:
        """Write one record; returns its key. Raises the store's error if it cannot."""
        now = datetime.now(UTC)
        body = audit_record(
            action=action,
            operator=self.operator,
            target=target,
            result=result,
            now=now,
            details=details,
        )
        data = (json.dumps(body, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        key = audit_key(action, now, secrets.token_hex(8))
        await self._store.put_bytes(
            key, data, sha256=hashlib.sha256(data).hexdigest(), content_type="application/json"
        )
        return key

    async def record_best_effort(
        self,
        action: str,
        target: Mapping[str, Any],
        result: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one record; a failure to write it is only logged.

        For a retrieval that failed (its own reason is the one to report) and
        for ``verify``, which read-only credentials must be able to run.
        """
        try:
            await self.record(action, target, result, details)
        except (ArchiverError, OSError, ValueError) as exc:
            log.warning("the audit record of this %s could not be written: %s", action, exc)
