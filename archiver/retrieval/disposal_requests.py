"""Disposition requests: a records officer's request to dispose of the due recordings, its
approval and its outcome, kept in the archive (as cases are: every console sees them, a
restart loses none).

One folder per request, one object per event, each written once under a fixed name
(a conditional write: a second approval of the same request, from this console or
another, finds ``approve.json`` there and is refused)::

    _archiver/dispositions/<id>/calls.json     the recordings covered, and those kept, why
    _archiver/dispositions/<id>/request.json   who, when, as-of, counts, calls.json's SHA-256
    _archiver/dispositions/<id>/approve.json   who approved, when
    _archiver/dispositions/<id>/result.json    disposed, skipped and failed, with reasons
    _archiver/dispositions/<id>/outcome.json   the counts, the certificate's audit key

The lists (up to MAX_CALLS recordings) are in objects of their own, so that the list
of requests reads the small events only. The list a request covers is fixed when it is
made (``request.json`` records its SHA-256: a list changed afterwards is refused); an
approval disposes of those recordings only (those still due and deletable then), never
of what became due since.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from archiver.manifest.chain import sha256_hex
from archiver.manifest.reader import read_object
from archiver.retrieval.disposal import Survey
from archiver.retrieval.disposition import Outcome
from archiver.retrieval.tombstones import Named
from archiver.storage.base import ObjectExistsError, ObjectStore
from archiver.storage.layout import ARCHIVER_PREFIX
from archiver.timeutil import utc_text

REQUESTS_PREFIX = f"{ARCHIVER_PREFIX}dispositions/"
REQUEST_ID = re.compile(r"D-\d{8}-[0-9a-f]{8}")
FORMAT = 1
MAX_CALLS = 10_000  # recordings one request covers: the rest waits for the next request
MAX_LISTED = 50  # requests a listing shows, newest first
EVENTS = ("request", "approve", "outcome")  # the small ones, read for a listing


class AlreadyDecided(Exception):
    """The request was approved already (here or by another console)."""


@dataclass
class DispositionRequest:
    """A request as its events say (``calls``, ``kept``, ``result``: read in full only)."""

    id: str
    by: str = ""
    at: str = ""
    as_of: str = ""
    count: int = 0  # recordings covered
    bytes: int = 0  # their size
    more: int = 0  # due but left to a later request (over MAX_CALLS)
    calls: list[dict[str, Any]] = field(default_factory=list)  # the recordings covered
    kept: list[dict[str, Any]] = field(default_factory=list)  # kept at request time, why
    approval: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None  # counts, certificate
    result: dict[str, Any] = field(default_factory=dict)  # disposed, skipped, failed
    damaged: str | None = None  # why the list cannot be trusted (approval refused)

    @property
    def status(self) -> str:
        """requested, approved (running, or stopped before its outcome), done or failed."""
        if self.outcome is not None:
            return "failed" if self.outcome.get("failed") else "done"
        return "approved" if self.approval is not None else "requested"

    def named(self) -> set[Named]:
        """The recordings covered, as tombstones name them (key, SHA-256)."""
        return {(str(c["object_key"]), str(c["sha256"])) for c in self.calls}

    def summary(self) -> dict[str, Any]:
        """What an audit record says of the request."""
        return {
            "request": self.id,
            "requested_by": self.by,
            "requested_at": self.at,
            "as_of": self.as_of,
            "calls": self.count,
            "bytes": self.bytes,
        }


def _encode(request_id: str, event: str, body: dict[str, Any]) -> bytes:
    return json.dumps(
        {"format": FORMAT, "request": request_id, "event": event, **body},
        ensure_ascii=False,
        sort_keys=True,
    ).encode()


async def _write(store: ObjectStore, request_id: str, event: str, data: bytes) -> None:
    await store.put_bytes(
        f"{REQUESTS_PREFIX}{request_id}/{event}.json",
        data,
        sha256=sha256_hex(data),
        content_type="application/json",
    )


def _call(candidate_call: Any, rule: str, ends: datetime | None) -> dict[str, Any]:
    return {
        "provider": candidate_call.provider,
        "cdr_id": candidate_call.cdr_id,
        "sip_call_id": candidate_call.sip_call_id,
        "object_key": candidate_call.object_key,
        "sha256": candidate_call.sha256,
        "size": candidate_call.size,
        "rule": rule,
        "ends": ends.isoformat() if ends else None,
    }


async def create_request(
    store: ObjectStore, user: str, as_of: datetime, found: Survey
) -> DispositionRequest:
    """A new request over what ``found`` says is due (at most MAX_CALLS), written now."""
    calls = [_call(c.call, c.due.rule, c.due.ends) for c, _ in found.found.deletable]
    calls += [
        {
            "provider": s.provider,
            "cdr_id": s.cdr_id,
            "sip_call_id": s.sip_call_id,
            "object_key": s.object_key,
            "sha256": s.sha256,
            "size": s.size,
            "rule": s.rule,
            "ends": None,
            "pending": True,  # tombstoned by an earlier run, still stored
        }
        for s in found.found.pending
    ]
    kept = [
        {"object_key": c.call.object_key, "cdr_id": c.call.cdr_id, "reason": why}
        for c, why in found.found.kept
    ]
    request_id = f"D-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"
    covered = calls[:MAX_CALLS]
    # The list first, then the request naming its SHA-256: a request is never seen
    # without the list it covers.
    listed = _encode(request_id, "calls", {"calls": covered, "kept": kept[:MAX_CALLS]})
    await _write(store, request_id, "calls", listed)
    body = {
        "by": user,
        "at": utc_text(datetime.now(UTC)),
        "as_of": as_of.isoformat(),
        "count": len(covered),
        "bytes": sum(int(c["size"]) for c in covered),
        "kept": len(kept),
        "more": max(0, len(calls) - MAX_CALLS),
        "calls_sha256": sha256_hex(listed),
    }
    await _write(store, request_id, "request", _encode(request_id, "request", body))
    loaded = await load_request(store, request_id)
    assert loaded is not None
    return loaded


async def record_approval(store: ObjectStore, request: DispositionRequest, user: str) -> None:
    """Write the approval (AlreadyDecided if one is there already)."""
    body = {"by": user, "at": utc_text(datetime.now(UTC))}
    try:
        await _write(store, request.id, "approve", _encode(request.id, "approve", body))
    except ObjectExistsError:
        raise AlreadyDecided(f"request {request.id} was approved already") from None
    request.approval = body


async def record_outcome(
    store: ObjectStore,
    request: DispositionRequest,
    user: str,
    outcome: Outcome,
    skipped: list[dict[str, str]],
    certificate: str,
) -> None:
    """Write what the approved run did: disposed, skipped with reasons, failed (the lists,
    then the outcome naming their counts)."""
    result = {
        "disposed": [
            {"object_key": s.object_key, "cdr_id": s.cdr_id, "size": s.size, "rule": s.rule}
            for s in outcome.disposed
        ],
        "skipped": skipped,
        "failed": [{"object_key": k, "reason": why} for k, why in outcome.failed],
    }
    await _write(store, request.id, "result", _encode(request.id, "result", result))
    body = {
        "by": user,
        "at": utc_text(datetime.now(UTC)),
        "disposed": len(outcome.disposed),
        "bytes": sum(s.size for s in outcome.disposed),
        "skipped": len(skipped),
        "failed": len(outcome.failed),
        "tombstone_chain": outcome.writer,
        "certificate": certificate,
    }
    await _write(store, request.id, "outcome", _encode(request.id, "outcome", body))
    request.outcome = body
    request.result = result


def _number(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _fold(request_id: str, events: dict[str, dict[str, Any]]) -> DispositionRequest | None:
    opened = events.get("request")
    if opened is None:
        return None
    request = DispositionRequest(
        id=request_id,
        by=str(opened.get("by", "")),
        at=str(opened.get("at", "")),
        as_of=str(opened.get("as_of", "")),
        count=_number(opened.get("count")),
        bytes=_number(opened.get("bytes")),
        more=_number(opened.get("more")),
    )
    request.approval = events.get("approve")
    request.outcome = events.get("outcome") if request.approval is not None else None
    return request


async def _event(store: ObjectStore, request_id: str, event: str) -> tuple[bytes, Any] | None:
    """An event's bytes and decoded value, or None (not written, not JSON, not this one's)."""
    try:
        data = await read_object(store, f"{REQUESTS_PREFIX}{request_id}/{event}.json")
        value = json.loads(data)
    except (KeyError, ValueError):
        return None
    if (
        isinstance(value, dict)
        and value.get("request") == request_id
        and value.get("event") == event
        and value.get("format") == FORMAT
    ):
        return data, value
    return None


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


async def load_request(
    store: ObjectStore, request_id: str, *, full: bool = True
) -> DispositionRequest | None:
    """The request ``request_id`` from its events, or None (no such request, not an id);
    ``full``: with its lists (the recordings covered, the result), else the counts only."""
    if not REQUEST_ID.fullmatch(request_id):
        return None
    events: dict[str, dict[str, Any]] = {}
    for event in EVENTS:
        found = await _event(store, request_id, event)
        if found is not None:
            events[event] = found[1]
    request = _fold(request_id, events)
    if request is None or not full:
        return request
    listed = await _event(store, request_id, "calls")
    if listed is None or sha256_hex(listed[0]) != events["request"].get("calls_sha256"):
        request.damaged = "its list of recordings is missing or not the one it was made with"
    else:
        request.calls = _dicts(listed[1].get("calls"))
        request.kept = _dicts(listed[1].get("kept"))
        if len(request.calls) != request.count:
            request.damaged = "its list of recordings does not hold the count it was made with"
    if request.outcome is not None:
        result = await _event(store, request_id, "result")
        request.result = result[1] if result is not None else {}
    return request


async def list_requests(store: ObjectStore) -> list[DispositionRequest]:
    """The newest MAX_LISTED requests in the storage, newest first (counts only)."""
    ids: list[str] = []
    async for obj in store.list(REQUESTS_PREFIX):
        request_id = obj.key[len(REQUESTS_PREFIX) :].split("/", 1)[0]
        if REQUEST_ID.fullmatch(request_id) and (not ids or ids[-1] != request_id):
            ids.append(request_id)
    # An id starts with its day: the newest days first, the rest never read.
    newest = sorted(dict.fromkeys(ids), key=lambda i: i[2:10], reverse=True)[:MAX_LISTED]
    found = [await load_request(store, i, full=False) for i in newest]
    return sorted((r for r in found if r is not None), key=lambda r: r.at, reverse=True)
