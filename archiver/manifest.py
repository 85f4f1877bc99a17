"""Manifest lines (pure) and the batch writer.

One JSON object per archived recording, in JSON Lines objects under
``manifests/date=YYYY-MM-DD/`` (the call's local date). Exactly once: a batch's
name and content are fixed in the state store before its object is written,
so a restart rewrites the identical object instead of adding a second line.

After each batch object, the id index (``_archiver/ids/``, see
:mod:`archiver.retrieval.index`) gets a pointer per line, before the batch is
marked written: a crash in between rewrites the batch and its pointers, both
idempotently.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, tzinfo
from typing import Any

from archiver.models import CallRecord
from archiver.retrieval.index import index_manifest
from archiver.state.base import StateStore
from archiver.storage.base import ObjectStore

log = logging.getLogger("archiver.manifest")

MANIFEST_PREFIX = "manifests/"
MANIFEST_CONTENT_TYPE = "application/x-ndjson"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def manifest_entry(
    call: CallRecord,
    *,
    object_key: str,
    sha256: str,
    size: int,
    content_type: str,
    archived_at: datetime,
) -> dict[str, Any]:
    """The manifest's fields for one archived recording.

    The recording URL is left out on purpose: signed URLs carry secrets.
    """
    return {
        "sip_call_id": call.sip_call_id,
        "cdr_id": call.cdr_id,
        "provider": call.provider.value,
        "object_key": object_key,
        "sha256": sha256,
        "size": size,
        "content_type": content_type,
        "call_started_at": call.started_at.isoformat(),
        "archived_at": archived_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "call_answered_at": _iso(call.answered_at),
        "call_ended_at": _iso(call.ended_at),
        "direction": call.direction.value if call.direction else None,
        "direction_raw": call.direction_raw,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "extension": call.extension,
        "agent": call.agent,
        "agent_name": call.agent_name,
        "customer_id": call.customer_id,
        "duration": call.duration,
        "billsec": call.billsec,
        "status": call.status,
        "cause": call.cause,
    }


def manifest_line(entry: dict[str, Any]) -> str:
    """One JSON Lines line (no trailing newline), UTF-8 kept readable."""
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


def manifest_date(call: CallRecord, tz: tzinfo) -> str:
    """The manifest partition of a call: its local date."""
    return call.started_at.astimezone(tz).strftime("%Y-%m-%d")


async def flush_manifest(
    state: StateStore, store: ObjectStore, run_id: str, max_lines: int = 1000
) -> int:
    """Batch every archived-but-unlisted recording and write every unwritten batch.

    Safe to repeat after a crash at any point: unwritten batches are rewritten
    byte for byte, and the storage's conditional write turns a batch that did
    reach the storage into a no-op. Returns the number of lines written.
    """
    await state.create_manifest_batches(run_id, max_lines)
    lines = 0
    for batch in await state.unwritten_manifest_batches():
        digest = hashlib.sha256(batch.content).hexdigest()
        outcome = await store.put_bytes(
            batch.key, batch.content, sha256=digest, content_type=MANIFEST_CONTENT_TYPE
        )
        pointers = await index_manifest(store, batch.key, batch.content)
        await state.mark_manifest_written(batch.id)
        lines += batch.line_count
        log.info(
            "manifest %s: %d lines (%s), %d new index pointers",
            batch.key,
            batch.line_count,
            outcome.value,
            pointers,
        )
    return lines
