"""The audit trail as the console shows it: records indexed from ``_archiver/audit/``.

Records are written by :class:`archiver.retrieval.audit.AuditTrail` (one new
object each, never rewritten), so a key indexed once is done; the index is
brought up to date after each of the console's own actions and on every
refresh. Filterable by user, action, result and date; exportable as CSV.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

from archiver.index_db import IndexDatabase
from archiver.manifest.reader import read_object
from archiver.retrieval.audit import AUDIT_PREFIX, AuditQuery, AuditTrail
from archiver.storage.base import ObjectStore
from archiver.timeutil import utc_text

log = logging.getLogger("archiver.console")

AUDIT_PAGE = 200


def audit_where(query: AuditQuery) -> tuple[str, list[object]]:
    """The SQL condition over the indexed columns, and its parameters (pure)."""
    parts: list[str] = []
    params: list[object] = []
    for column in ("operator", "action", "result"):
        value = getattr(query, column)
        if value:
            parts.append(f"{column} = ?")
            params.append(value.strip())
    if query.since is not None:
        parts.append("at >= ?")
        params.append(utc_text(query.since))
    if query.until is not None:
        parts.append("at < ?")
        params.append(utc_text(query.until))
    return (" AND ".join(parts) or "1"), params


class AuditLog:
    """The audit records, indexed; and the console's way of writing one."""

    def __init__(self, db: IndexDatabase) -> None:
        self.db = db

    async def refresh(self, store: ObjectStore, prefix: str = AUDIT_PREFIX) -> int:
        """Index the audit records under ``prefix`` not indexed yet; returns how many."""
        known = await self.db.run(
            lambda c: {
                str(r[0])
                for r in c.execute("SELECT key FROM audit WHERE key >= ?", (prefix,))
                if str(r[0]).startswith(prefix)
            }
        )
        rows: list[tuple[str, str, str, str, str, str]] = []
        async for obj in store.list(prefix):
            if obj.key in known:
                continue
            try:
                record = json.loads(await read_object(store, obj.key))
            except KeyError:
                continue
            except (ValueError, UnicodeDecodeError):
                record = None
            if not isinstance(record, dict):
                # The trail is evidence: damage is shown (as archiver audit does), not skipped.
                log.warning("audit record %s is not a JSON object", obj.key)
                record = {"key": obj.key, "error": "not a JSON object", "result": "damaged"}
            rows.append(
                (
                    obj.key,
                    str(record.get("at", "")),
                    str(record.get("operator", "")),
                    str(record.get("action", "")),
                    str(record.get("result", "")),
                    json.dumps(record, ensure_ascii=False),
                )
            )
        if rows:
            await self.db.run(
                lambda c: c.executemany("INSERT OR IGNORE INTO audit VALUES (?,?,?,?,?,?)", rows)
            )
        return len(rows)

    async def search(
        self, wanted: AuditQuery, limit: int = AUDIT_PAGE, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Matching records, newest first (at most ``limit``, after ``offset``)."""
        where, params = audit_where(wanted)

        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                f"SELECT record FROM audit WHERE {where} "  # noqa: S608
                "ORDER BY at DESC, key DESC LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
            return [json.loads(str(r[0])) for r in rows]

        return await self.db.run(run)

    async def record(
        self,
        store: ObjectStore,
        user: str,
        action: str,
        target: Mapping[str, Any],
        result: str,
        details: Mapping[str, Any],
        *,
        best_effort: bool = False,
    ) -> str | None:
        """Write one record as ``user``, then index it; its key (None: best effort).

        A record that must exist before anything is served raises the store's
        error. ``best_effort``, for the record of a failure (its own reason is the
        one to report): a failure to write is only logged, and the record is
        indexed by the next refresh.
        """
        trail = AuditTrail(store, user)
        details = {**details, "via": "console"}
        if best_effort:
            await trail.record_best_effort(action, target, result, details)
            return None
        key = await trail.record(action, target, result, details)
        # Only the record's own day is listed again: the whole trail may be long.
        await self.refresh(store, key.rsplit("/", 1)[0] + "/")
        return key
