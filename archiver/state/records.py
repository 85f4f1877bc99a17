"""What both state stores keep of a call, and how a stored row becomes a Job.

One home for the stored shape of a call (no raw payload, no URL inside the
record), shared by the SQLite and PostgreSQL stores.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord, call_from_dict, call_to_dict
from archiver.state.base import Job, JobState, ManifestBatch


def record_json(call: CallRecord) -> str:
    """The call as stored: without its raw payload or its recording URL.

    Nothing needs the provider's payload once it is parsed, and it may carry
    secrets; the URL lives in its own column only while the job needs it.
    """
    record = call_to_dict(dataclasses.replace(call, raw={}, recording_url=None))
    del record["raw"], record["recording_url"]
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def stored_kind(value: str | None) -> FailureKind:
    """A stored kind; one this archiver does not know (a newer one's) reads as OTHER."""
    try:
        return FailureKind(value or FailureKind.OTHER)
    except ValueError:
        return FailureKind.OTHER


def stored_job(
    job_id: int,
    stored_record: str,
    url: str | None,
    state: str,
    attempts: int,
    first_seen_at: datetime,
) -> Job:
    """A Job from its stored columns; the URL column wins over the record's (it may
    have been refreshed since)."""
    call = dataclasses.replace(call_from_dict(json.loads(stored_record)), recording_url=url)
    return Job(
        id=int(job_id),
        call=call,
        state=JobState(state),
        attempts=int(attempts),
        first_seen_at=first_seen_at,
    )


def archived_line(entry: ManifestEntry, manifest_date: str) -> tuple[str, datetime]:
    """The manifest line and archived time ``mark_archived`` stores; ValueError when
    the line is not one line, the date not a canonical YYYY-MM-DD (it names a
    folder of manifest keys), or the line has no archived_at with an offset."""
    line = entry.to_line()
    if "\n" in line or "\r" in line:
        raise ValueError("a manifest line must be one line")
    try:
        canonical = date.fromisoformat(manifest_date).isoformat()
    except ValueError:
        canonical = None
    if canonical != manifest_date:
        raise ValueError(f"manifest_date must be YYYY-MM-DD: {manifest_date!r}")
    if entry.archived_at is None:
        raise ValueError("the manifest line has no archived_at with a UTC offset")
    return line, entry.archived_at


def check_retry_state(state: JobState) -> None:
    """``mark_retry`` leaves a job pending or waiting_ready, nothing else."""
    if state not in (JobState.PENDING, JobState.WAITING_READY):
        raise ValueError(f"mark_retry: state must be pending or waiting_ready, not {state}")


def stored_batch(row: Sequence[Any]) -> ManifestBatch:
    """A ManifestBatch from (id, key, content, line_count, link)."""
    return ManifestBatch(
        id=int(row[0]),
        key=str(row[1]),
        content=bytes(row[2]),
        line_count=int(row[3]),
        link=None if row[4] is None else bytes(row[4]),
    )


def line_values(
    entry: ManifestEntry, manifest_date: str, encode: Callable[[datetime], Any]
) -> tuple[Any, ...]:
    """What an archived call's row keeps of its line, in the binds' order ($3 to $9 of
    ``MARK_ARCHIVED`` and the adoption's updates); ``encode`` stores a time."""
    line, archived_at = archived_line(entry, manifest_date)
    return (
        entry.object_key,
        entry.sha256,
        entry.size,
        entry.content_type,
        encode(archived_at),
        line,
        manifest_date,
    )
