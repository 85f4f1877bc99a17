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

import csv
import getpass
import hashlib
import io
import json
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from archiver import __version__
from archiver.errors import ArchiverError
from archiver.manifest.reader import read_object
from archiver.storage.base import ObjectStore
from archiver.timeutil import utc_text

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
        "at": utc_text(now),
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
        text = json.dumps(body, ensure_ascii=False, sort_keys=True) + "\n"
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (argv that is not UTF-8): escaped
            data = (json.dumps(body, sort_keys=True) + "\n").encode("ascii")
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


# Past this many days, one listing of the whole trail beats one listing per day.
_MAX_DAY_LISTINGS = 62
AUDIT_COLUMNS = ("at", "operator", "action", "result", "target", "details", "os_user")


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which audit records to read back; every criterion given must match."""

    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    operator: str | None = None
    result: str | None = None

    def day_prefixes(self) -> list[str]:
        """The listing prefixes the range needs: one per UTC day, or the whole trail (pure)."""
        if self.since is None or self.until is None:
            return [AUDIT_PREFIX]
        day = self.since.astimezone(UTC).date()
        last = (self.until.astimezone(UTC) - timedelta(microseconds=1)).date()
        if (last - day).days >= _MAX_DAY_LISTINGS:
            return [AUDIT_PREFIX]
        prefixes = []
        while day <= last:
            prefixes.append(f"{AUDIT_PREFIX}{day:%Y/%m/%d}/")
            day += timedelta(days=1)
        return prefixes

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether one record answers every criterion (pure)."""
        try:
            at = datetime.fromisoformat(str(record.get("at", "")).replace("Z", "+00:00"))
        except ValueError:
            return False
        if self.since is not None and at < self.since:
            return False
        if self.until is not None and at >= self.until:
            return False
        if self.action is not None and record.get("action") != self.action:
            return False
        if self.result is not None and record.get("result") != self.result:
            return False
        wanted = self.operator.strip().casefold() if self.operator else None
        return wanted is None or str(record.get("operator", "")).casefold() == wanted


async def read_trail(store: ObjectStore, query: AuditQuery) -> AsyncIterator[dict[str, Any]]:
    """The audit records ``query`` selects, oldest first (keys sort by time).

    A record that is not a JSON object is yielded as ``{"key", "error"}``: the
    trail is evidence, so damage is shown, not skipped.
    """
    for prefix in query.day_prefixes():
        async for obj in store.list(prefix):
            try:
                record = json.loads(await read_object(store, obj.key))
            except KeyError:
                continue
            except (ValueError, UnicodeDecodeError):
                record = None
            if not isinstance(record, dict):
                yield {"key": obj.key, "error": "not a JSON object"}
            elif query.matches(record):
                yield {**record, "key": obj.key}


def audit_csv(records: Sequence[Mapping[str, Any]]) -> str:
    """The records as CSV, one per line, nested values as JSON."""
    from archiver.retrieval.search import _cell

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(AUDIT_COLUMNS)
    for record in records:
        writer.writerow([_cell(record.get(column, "")) for column in AUDIT_COLUMNS])
    return out.getvalue()
