"""Tombstones: the chained record that a recording was disposed of, and why.

A recording deleted under the retention schedule (``archiver dispose``) or at
a data subject's request (``archiver subject --erase``) leaves its call line in
the manifest (manifest objects are never rewritten) and gains a *tombstone*,
one JSON line per recording::

    {"record": "tombstone", "provider": P, "cdr_id": C, "sip_call_id": S,
     "object_key": K, "sha256": H, "size": N, "manifest": M, "line": n,
     "rule": R, "reason": "retention", "approved_by": A, "disposed_at": T,
     "versions": [...]}

in objects ``_archiver/tombstones/<seq:012>-<writer>.jsonl``, chained exactly
like supersede records (:mod:`archiver.manifest.supersede`): a link under
``_archiver/chain/<writer>/`` records each object's SHA-256 and the writer's
head moves over it, so ``verify`` proves none was edited or removed. A
recording gone with no tombstone naming its key and SHA-256 is still MISSING.

The tombstone is written *before* the recording is deleted: a run stopped in
between leaves a tombstone whose recording is still there (verify checks it as
usual; the next run deletes it), never a deletion without its record.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from archiver.manifest.supersede import parse_record_lines
from archiver.manifest.writer import append_chained
from archiver.storage.base import ObjectStore
from archiver.storage.layout import (
    TOMBSTONE_PREFIX,
    WRITER_ID,
)
from archiver.timeutil import utc_text

RECORD_TYPE = "tombstone"
RECORDS_PER_OBJECT = 1000
REASONS = ("retention", "erasure")


@dataclass(frozen=True, slots=True)
class Tombstone:
    """One disposed recording: its call, its object, the rule and who approved it."""

    provider: str
    cdr_id: str
    sip_call_id: str
    object_key: str
    sha256: str
    size: int
    manifest: str
    line: int
    rule: str
    reason: str
    approved_by: str
    disposed_at: str = ""
    versions: tuple[str, ...] = ()
    record_key: str = field(default="", compare=False)

    @property
    def identity(self) -> tuple[str, str]:
        """(provider, cdr_id): the call."""
        return (self.provider, self.cdr_id)

    @property
    def disposed_day(self) -> str:
        """The date of the disposition (YYYY-MM-DD) for messages."""
        return self.disposed_at[:10]

    def to_line(self) -> str:
        """The record's JSON line (no newline)."""
        body: dict[str, Any] = {
            "record": RECORD_TYPE,
            "provider": self.provider,
            "cdr_id": self.cdr_id,
            "sip_call_id": self.sip_call_id,
            "object_key": self.object_key,
            "sha256": self.sha256,
            "size": self.size,
            "manifest": self.manifest,
            "line": self.line,
            "rule": self.rule,
            "reason": self.reason,
            "approved_by": self.approved_by,
            "disposed_at": self.disposed_at,
            "versions": list(self.versions),
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_line(cls, data: object, record_key: str = "") -> Tombstone:
        """Parse one decoded record; ValueError naming what is wrong."""
        if not isinstance(data, dict) or data.get("record") != RECORD_TYPE:
            raise ValueError("not a tombstone")
        reason = _text(data, "reason")
        if reason not in REASONS:
            raise ValueError(f"reason is not one of {', '.join(REASONS)}")
        versions = data.get("versions", [])
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise ValueError("versions is not a list of version ids")
        sha = _text(data, "sha256")
        if len(sha) != 64:
            raise ValueError("sha256 is not 64 hex digits")
        return cls(
            provider=_text(data, "provider"),
            cdr_id=_text(data, "cdr_id"),
            sip_call_id=_text(data, "sip_call_id"),
            object_key=_text(data, "object_key"),
            sha256=sha,
            size=_number(data, "size", 0),
            manifest=_text(data, "manifest"),
            line=_number(data, "line", 1),
            rule=_text(data, "rule"),
            reason=reason,
            approved_by=_text(data, "approved_by"),
            disposed_at=_text(data, "disposed_at"),
            versions=tuple(versions),
            record_key=record_key,
        )


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise ValueError(f"{name} is not a string")
    return value


def _number(data: dict[str, Any], name: str, least: int) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} is not a number")
    return value


def tombstone_key(writer: str, seq: int) -> str:
    """The key of tombstone object ``seq`` of ``writer``."""
    return f"{TOMBSTONE_PREFIX}{seq:012d}-{writer}.jsonl"


def parse_tombstone_key(key: str) -> tuple[str, int] | None:
    """(writer, seq) of a tombstone object's key, or None for any other key (pure)."""
    if not key.startswith(TOMBSTONE_PREFIX) or not key.endswith(".jsonl"):
        return None
    seq, dash, writer = key[len(TOMBSTONE_PREFIX) : -len(".jsonl")].partition("-")
    if not dash or not (seq.isascii() and seq.isdigit()) or not WRITER_ID.fullmatch(writer):
        return None
    return writer, int(seq)


def parse_tombstones(key: str, content: bytes) -> tuple[list[Tombstone], list[str]]:
    """The tombstones of one object and a reason for each line that is not one (pure)."""
    return parse_record_lines(key, content, Tombstone.from_line)


async def write_tombstones(
    store: ObjectStore, stones: Sequence[Tombstone], now: datetime, kind: str = "dispose"
) -> tuple[str | None, list[Tombstone]]:
    """Write ``stones`` as chained objects of a new writer (``<kind>-<random>``).

    Each object is written once, then its link, then the head moves over it
    (as :func:`archiver.manifest.supersede.write_records` does). Returns the
    writer (None when there was nothing to write) and the stones as written.
    """
    if not stones:
        return None, []
    writer = f"{kind}-{secrets.token_hex(6)}"
    previous: tuple[int, str] | None = None
    written: list[Tombstone] = []
    for seq, start in enumerate(range(0, len(stones), RECORDS_PER_OBJECT), start=1):
        key = tombstone_key(writer, seq)
        chunk = [
            replace(s, disposed_at=utc_text(now), record_key=key)
            for s in stones[start : start + RECORDS_PER_OBJECT]
        ]
        content = "".join(s.to_line() + "\n" for s in chunk).encode()
        previous = await append_chained(store, writer, seq, key, content, len(chunk), previous)
        written += chunk
    return writer, written
