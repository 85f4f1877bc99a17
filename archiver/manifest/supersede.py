"""Supersede records: which of two call lines of one call stands, written beside the manifest.

A call (provider, cdr id) has one call line. An archive that holds two (written
before the archive was asked, by a state database that had lost its memory) is
repaired without rewriting anything: ``archiver dedupe`` writes *supersede
records*, one JSON line per superseded call line::

    {"record": "supersede", "provider": P, "cdr_id": C, "sip_call_id": S,
     "kept_manifest": K1, "kept_line": n1, "superseded_manifest": K2,
     "superseded_line": n2, "reason": "...", "recorded_at": T}

in objects ``_archiver/supersede/<seq:012>-<writer>.jsonl``, apart from the call
lines under ``manifests/`` (a query of ``manifests/`` sees call lines alone).
Each record object is chained like a manifest object: a link under
``_archiver/chain/<writer>/`` records its SHA-256 and the writer's head moves
over it, so ``verify`` proves none was altered or removed. A line is named by
its manifest object and line number: manifest objects are written once and
chained, so the pair pins the line's bytes.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from archiver.manifest.writer import append_chained
from archiver.storage.base import ObjectStore
from archiver.storage.layout import (
    ARCHIVER_PREFIX,
    WRITER_ID,
)
from archiver.timeutil import utc_text

R = TypeVar("R")

SUPERSEDE_PREFIX = f"{ARCHIVER_PREFIX}supersede/"
RECORD_TYPE = "supersede"
# Records per object: like a manifest batch, a few hundred KB at most.
RECORDS_PER_OBJECT = 1000
# Where a line is: (manifest object key, line number from 1).
Location = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Supersession:
    """One record: ``superseded`` is a second call line of the call whose line ``kept`` is."""

    provider: str
    cdr_id: str
    sip_call_id: str
    kept: Location
    superseded: Location
    reason: str = "a second call line of the same call"
    recorded_at: str = ""
    record_key: str = ""  # the record object it was read from ("" for one not yet written)

    @property
    def identity(self) -> tuple[str, str]:
        """(provider, cdr_id): the call."""
        return (self.provider, self.cdr_id)

    def to_line(self) -> str:
        """The record's JSON line (no newline)."""
        body = {
            "record": RECORD_TYPE,
            "provider": self.provider,
            "cdr_id": self.cdr_id,
            "sip_call_id": self.sip_call_id,
            "kept_manifest": self.kept[0],
            "kept_line": self.kept[1],
            "superseded_manifest": self.superseded[0],
            "superseded_line": self.superseded[1],
            "reason": self.reason,
            "recorded_at": self.recorded_at,
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_line(cls, data: object, record_key: str = "") -> Supersession:
        """Parse one decoded record; ValueError naming what is wrong."""
        if not isinstance(data, dict) or data.get("record") != RECORD_TYPE:
            raise ValueError("not a supersede record")
        return cls(
            provider=_text(data, "provider"),
            cdr_id=_text(data, "cdr_id"),
            sip_call_id=_text(data, "sip_call_id"),
            kept=(_text(data, "kept_manifest"), _number(data, "kept_line")),
            superseded=(_text(data, "superseded_manifest"), _number(data, "superseded_line")),
            reason=str(data.get("reason") or ""),
            recorded_at=str(data.get("recorded_at") or ""),
            record_key=record_key,
        )


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise ValueError(f"{name} is not a string")
    return value


def _number(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} is not a line number")
    return value


def record_key(writer: str, seq: int) -> str:
    """The key of record object ``seq`` of ``writer``."""
    return f"{SUPERSEDE_PREFIX}{seq:012d}-{writer}.jsonl"


def parse_record_lines(
    key: str, content: bytes, build: Callable[[Any, str], R]
) -> tuple[list[R], list[str]]:
    """The chained records of one JSON Lines object (supersede records, tombstones), each
    made by ``build(json, key)``, and a reason for each line that is not one (pure)."""
    found: list[R] = []
    bad: list[str] = []
    for number, raw in enumerate(content.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            found.append(build(json.loads(raw), key))
        except (ValueError, UnicodeDecodeError) as exc:
            reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            bad.append(f"{key} line {number}: {reason}")
    return found, bad


def parse_records(key: str, content: bytes) -> tuple[list[Supersession], list[str]]:
    """The records of one object and a reason for each line that is not one (pure)."""
    return parse_record_lines(key, content, Supersession.from_line)


async def write_records(
    store: ObjectStore, records: Sequence[Supersession], now: datetime
) -> tuple[str | None, list[str]]:
    """Write ``records`` as chained objects of a new writer (``dedupe-<random>``).

    Returns the writer (None when there was nothing to write) and the keys
    written. Each object is written once, then its link, then the head moves
    over it: stopped half-way, the chain is valid and shorter, and the records
    not written are found again by the next run.
    """
    if not records:
        return None, []
    writer = f"dedupe-{secrets.token_hex(6)}"
    stamped = [
        Supersession(
            r.provider, r.cdr_id, r.sip_call_id, r.kept, r.superseded, r.reason, utc_text(now)
        )
        for r in records
    ]
    previous: tuple[int, str] | None = None
    keys: list[str] = []
    for seq, chunk in enumerate(_chunks(stamped, RECORDS_PER_OBJECT), start=1):
        key = record_key(writer, seq)
        content = "".join(r.to_line() + "\n" for r in chunk).encode()
        previous = await append_chained(store, writer, seq, key, content, len(chunk), previous)
        keys.append(key)
    return writer, keys


def _chunks(items: Sequence[Supersession], size: int) -> Iterable[Sequence[Supersession]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def parse_record_key(key: str) -> tuple[str, int] | None:
    """(writer, seq) of a record object's key, or None for any other key (pure)."""
    if not key.startswith(SUPERSEDE_PREFIX) or not key.endswith(".jsonl"):
        return None
    seq, dash, writer = key[len(SUPERSEDE_PREFIX) : -len(".jsonl")].partition("-")
    if not dash or not (seq.isascii() and seq.isdigit()) or not WRITER_ID.fullmatch(writer):
        return None
    return writer, int(seq)
