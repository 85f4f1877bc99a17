"""Cases: an auditor's unit of work (a complaint, an inspection), kept in the archive.

A case has a reference, a reason and the calls added to it. It lives in the
storage, so every console sees it, as events written once and never changed
(Object Lock may forbid changing them)::

    _archiver/cases/<case id>/<time>-<random>.json
        {"format": 1, "case": ID, "event": "open" | "add", "at": ..., "by": USER,
         "reference": ..., "reason": ..., "calls": ["<provider>:<cdr id>", ...]}

A case is its events folded in time order; its history is that list. Calls are
named by (provider, cdr id), the key ``reconcile`` and ``get`` use.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from archiver.manifest.chain import sha256_hex
from archiver.manifest.reader import read_object
from archiver.storage.base import ObjectStore
from archiver.storage.layout import ARCHIVER_PREFIX

CASES_PREFIX = f"{ARCHIVER_PREFIX}cases/"
CASE_ID = re.compile(r"C-\d{8}-[0-9a-f]{8}")
FORMAT = 1
MAX_CALLS = 10_000  # calls one case may hold
MAX_EVENTS = 10_000  # events of one case read


@dataclass
class Case:
    """A case as its events say."""

    id: str
    reference: str = ""
    reason: str = ""
    opened_by: str = ""
    opened_at: str = ""
    calls: list[str] = field(default_factory=list)  # "<provider>:<cdr id>", in order added
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What an audit record or a package says of the case."""
        return {
            "case": self.id,
            "reference": self.reference,
            "reason": self.reason,
            "opened_by": self.opened_by,
            "opened_at": self.opened_at,
            "calls": len(self.calls),
        }


def _check_text(name: str, value: str, low: int, high: int) -> str:
    value = " ".join(value.split())
    if not low <= len(value) <= high or sum(ch.isalnum() for ch in value) < min(low, 3):
        raise ValueError(f"a case's {name}: {low} to {high} characters, 3 letters or digits")
    return value


async def _write(store: ObjectStore, case_id: str, event: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    body = {"format": FORMAT, "case": case_id, "at": now.isoformat(), **event}
    data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
    key = f"{CASES_PREFIX}{case_id}/{now:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.json"
    await store.put_bytes(key, data, sha256=sha256_hex(data), content_type="application/json")


async def open_case(store: ObjectStore, user: str, reference: str, reason: str) -> Case:
    """A new case, written to the storage; ValueError for a blank reference or reason."""
    reference = _check_text("reference", reference, 2, 120)
    reason = _check_text("reason", reason, 4, 500)
    case_id = f"C-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"
    await _write(
        store, case_id, {"event": "open", "by": user, "reference": reference, "reason": reason}
    )
    case = await load_case(store, case_id)
    assert case is not None
    return case


async def add_calls(store: ObjectStore, case: Case, user: str, calls: Sequence[str]) -> int:
    """Add ``calls`` ("<provider>:<cdr id>") not in the case yet; how many were added."""
    new = [c for c in dict.fromkeys(calls) if c not in case.calls]
    if len(case.calls) + len(new) > MAX_CALLS:
        raise ValueError(f"a case holds at most {MAX_CALLS} calls")
    if new:
        await _write(store, case.id, {"event": "add", "by": user, "calls": new})
        case.calls += new
    return len(new)


def _fold(case_id: str, events: list[dict[str, Any]]) -> Case | None:
    case = Case(case_id)
    for event in sorted(events, key=lambda e: str(e.get("at", ""))):
        if event.get("case") != case_id or event.get("format") != FORMAT:
            continue
        kind = event.get("event")
        if kind == "open" and not case.opened_at:
            case.reference = str(event.get("reference", ""))
            case.reason = str(event.get("reason", ""))
            case.opened_by = str(event.get("by", ""))
            case.opened_at = str(event.get("at", ""))
        elif kind == "add" and isinstance(event.get("calls"), list):
            case.calls += [str(c) for c in event["calls"] if str(c) not in case.calls]
        else:
            continue
        case.history.append(event)
    return case if case.opened_at else None


async def load_case(store: ObjectStore, case_id: str) -> Case | None:
    """The case ``case_id`` from its events, or None (no such case, or not a case id)."""
    if not CASE_ID.fullmatch(case_id):
        return None
    events: list[dict[str, Any]] = []
    async for obj in store.list(f"{CASES_PREFIX}{case_id}/"):
        if len(events) >= MAX_EVENTS:
            break
        try:
            value = json.loads(await read_object(store, obj.key))
        except (KeyError, ValueError):
            continue  # gone, or not JSON: not an event of this case
        if isinstance(value, dict):
            events.append(value)
    return _fold(case_id, events)


async def list_cases(store: ObjectStore) -> list[Case]:
    """Every case in the storage, newest first."""
    ids: list[str] = []
    async for obj in store.list(CASES_PREFIX):
        case_id = obj.key[len(CASES_PREFIX) :].split("/", 1)[0]
        if CASE_ID.fullmatch(case_id) and (not ids or ids[-1] != case_id):
            ids.append(case_id)
    cases = [await load_case(store, case_id) for case_id in dict.fromkeys(ids)]
    return sorted((c for c in cases if c is not None), key=lambda c: c.opened_at, reverse=True)
