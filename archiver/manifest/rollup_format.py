"""The rollup objects' formats: an entries line, a rollup record (pure).

See :mod:`archiver.manifest.rollup` for what a rollup is; this module only
turns its entries and record into bytes and back, canonically (like a link).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from archiver.manifest.chain import canonical_json, field_count, field_text, json_bytes
from archiver.storage.layout import WRITER_ID, rollup_key

ROLLUP_FORMAT = 1
# One rollup covers at most this many manifest objects and bytes of rollup lines
# (a single larger object still gets a rollup of its own): what a reader holds in memory.
ROLLUP_MAX_OBJECTS = 5_000
ROLLUP_MAX_BYTES = 64 * 1024 * 1024
# Size caps for a reader, before it reads: a record is a few hundred bytes; the
# entries hold at most ROLLUP_MAX_OBJECTS links and tokens (a token is a few KiB).
MAX_RECORD_BYTES = 64 * 1024
MAX_ENTRIES_BYTES = 128 * 1024 * 1024


def _object(data: bytes, what: str) -> dict[str, Any]:
    try:
        body = json_bytes(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{what} is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError(f"{what} is not a JSON object")
    return body


@dataclass(frozen=True, slots=True)
class RollupEntry:
    """One covered link: its seq, its exact bytes, its trusted timestamp token (if any)."""

    seq: int
    link: bytes
    token: bytes | None = None

    def to_line(self) -> bytes:
        """The entries line (canonical JSON, no newline)."""
        token = base64.b64encode(self.token).decode() if self.token is not None else None
        return canonical_json({"link": self.link.decode(), "seq": self.seq, "token": token})

    @classmethod
    def from_line(cls, raw: bytes) -> RollupEntry:
        """Parse one entries line; ValueError if it is not one."""
        body = _object(raw, "entries line")
        seq = field_count(body, "seq")
        link = field_text(body, "link")
        token = field_text(body, "token", optional=True)
        decoded = None
        if token is not None:
            try:
                decoded = base64.b64decode(token, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("token is not base64") from None
        assert seq is not None
        assert link is not None
        return cls(seq, link.encode(), decoded)


def entries_to_bytes(entries: Iterable[RollupEntry]) -> bytes:
    """The entries object's bytes: one line per entry, each ending with a newline."""
    return b"".join(entry.to_line() + b"\n" for entry in entries)


def parse_entries(data: bytes) -> list[RollupEntry]:
    """Every line of an entries object; ValueError naming the first bad line."""
    if not data.endswith(b"\n"):
        raise ValueError("the entries object does not end with a newline (cut short)")
    entries = []
    for number, raw in enumerate(data[:-1].split(b"\n"), start=1):
        try:
            entries.append(RollupEntry.from_line(raw))
        except ValueError as exc:
            raise ValueError(f"entries line {number}: {exc}") from None
    return entries


@dataclass(frozen=True, slots=True)
class RollupRecord:
    """A rollup's record: what it covers, and the SHA-256 of each of its parts."""

    writer: str
    n: int
    first_seq: int
    last_seq: int
    prev_seq: int | None  # the link before the first covered one (None: from the first)
    prev_sha256: str | None
    end_sha256: str  # SHA-256 of the last covered link's bytes
    objects: int
    lines: int
    data_key: str
    data_sha256: str
    data_size: int
    entries_key: str
    entries_sha256: str
    entries_size: int
    first_date: str  # min/max manifest partition date covered, YYYY-MM-DD
    last_date: str
    prev_rollup_sha256: str | None  # SHA-256 of record n - 1's bytes (None for n = 1)
    created_at: str

    @property
    def key(self) -> str:
        """Where this record is stored."""
        return rollup_key(self.writer, self.n)

    def to_bytes(self) -> bytes:
        """The record's bytes (canonical JSON, like a link's)."""
        return canonical_json({"format": ROLLUP_FORMAT, "record": "rollup", **asdict(self)})

    @classmethod
    def from_bytes(cls, data: bytes) -> RollupRecord:
        """Parse a record; ValueError if it is not one."""
        if len(data) > MAX_RECORD_BYTES:
            raise ValueError(f"a rollup record of {len(data)} bytes (at most {MAX_RECORD_BYTES})")
        body = _object(data, "rollup record")
        if body.get("format") != ROLLUP_FORMAT or body.get("record") != "rollup":
            raise ValueError(f"not a rollup record (format {ROLLUP_FORMAT})")
        writer = field_text(body, "writer") or ""
        if not WRITER_ID.fullmatch(writer):
            raise ValueError("writer is not a writer id")
        prev_seq = field_count(body, "prev_seq", optional=True)
        prev_sha = field_text(body, "prev_sha256", optional=True)
        if (prev_seq is None) != (prev_sha is None):
            raise ValueError("prev_seq and prev_sha256 go together")
        fields: dict[str, Any] = {
            name: field_count(body, name) or 0
            for name in ("n", "first_seq", "last_seq", "objects", "lines")
            + ("data_size", "entries_size")
        }
        for name in ("end_sha256", "data_key", "data_sha256", "entries_key", "entries_sha256"):
            fields[name] = field_text(body, name) or ""
        for name in ("first_date", "last_date", "created_at"):
            fields[name] = field_text(body, name) or ""
        return cls(
            writer=writer,
            prev_seq=prev_seq,
            prev_sha256=prev_sha,
            prev_rollup_sha256=field_text(body, "prev_rollup_sha256", optional=True),
            **fields,
        )
