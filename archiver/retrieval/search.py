"""``search``: archived calls by phone number, extension, agent, direction and time.

From the storage alone: the manifest partitions of the time range are read
and each line is matched (pure rules below). Phone numbers are compared by
their digits, the Vietnamese country code folded into a leading zero, so
``+84 90 123 4567``, ``84901234567`` and ``0901234567`` are the same number.
"""

from __future__ import annotations

import bisect
import csv
import io
import itertools
import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TextIO

from archiver.lone_surrogates import has_surrogate, printable, to_bytes
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import in_range
from archiver.manifest.rollup_read import read_manifests
from archiver.models import Direction
from archiver.retrieval.duplicates import read_records
from archiver.storage.base import ObjectStore, StoredObject

_NON_DIGITS = re.compile(r"\D")
_FORMULA_STARTS = frozenset("=+-@\t\r")
_NUMBERISH = re.compile(r"[+-]?[0-9 ().-]*")
COUNTRY_CODE = "84"
_MATCH_BATCH = 1000
# The matches oldest first: the table's own order (its key), no sort file.
MATCHES_IN_ORDER = (
    "SELECT line, manifest_key FROM search_matches ORDER BY started, provider, cdr_id, n"
)

# The columns of the terminal table (the exports carry every manifest field).
TABLE_COLUMNS = (
    ("call_started_at", "started"),
    ("direction", "dir"),
    ("from_number", "from"),
    ("to_number", "to"),
    ("extension", "ext"),
    ("agent", "agent"),
    ("billsec", "billsec"),
    ("sip_call_id", "sip_call_id"),
    ("cdr_id", "cdr_id"),
)


def phone_key(number: str) -> str:
    """A phone number as compared: digits only, +84/84 as a leading 0 (pure).

    Short numbers (extensions, service numbers) are kept as their digits.
    """
    digits = _NON_DIGITS.sub("", number)
    if digits.startswith("00" + COUNTRY_CODE):
        digits = digits[2:]
    if digits.startswith(COUNTRY_CODE) and len(digits) >= 11:
        digits = "0" + digits[len(COUNTRY_CODE) :]
    return digits


def direction_of(fields: Mapping[str, Any], codes: Mapping[str, str]) -> str | None:
    """The call's direction: the normalized one, else what its numeric code means (pure)."""
    normalized = fields.get("direction")
    if normalized:
        return str(normalized)
    return codes.get(str(fields.get("direction_raw") or "").strip())


def direction_label(fields: Mapping[str, Any], codes: Mapping[str, str]) -> str:
    """The direction as shown: ``outbound``, ``outbound (2)`` from a code, ``code 2`` (pure)."""
    normalized = fields.get("direction")
    raw = str(fields.get("direction_raw") or "").strip()
    if normalized:
        return str(normalized)
    if raw in codes:
        return f"{codes[raw]} ({raw})"
    return f"code {raw}" if raw else ""


@dataclass(frozen=True)
class SearchQuery:
    """What to look for; every given criterion must match.

    ``direction`` is a meaning (``inbound``, ``outbound``, ``local``) or a
    provider's numeric code; ``direction_codes`` says what codes mean, where
    the operator knows it (``ARCHIVER_SOURCE__DIRECTION_CODES``).
    """

    phone: str | None = None  # from or to
    extension: str | None = None
    agent: str | None = None  # agent id or name, case-insensitive
    direction: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    direction_codes: Mapping[str, str] = field(default_factory=dict)
    # The keyed hashes of ``phone`` (ARCHIVER_PRIVACY__KEYS): finds it in sealed lines.
    phone_hashes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.phone is not None and not phone_key(self.phone):
            raise ValueError(f"--phone {self.phone!r}: no digits")
        meanings = {d.value for d in Direction}
        if self.direction is not None and not (
            self.direction in meanings or self.direction.isdigit()
        ):
            raise ValueError(
                f"--direction {self.direction!r}: inbound, outbound, local or a numeric code"
            )

    def matches(self, call: ManifestEntry) -> bool:
        """Whether ``call`` answers every criterion (pure)."""
        return self.matches_but_direction(call) and self.matches_direction(call)

    def matches_direction(self, call: ManifestEntry) -> bool:
        """Whether ``call`` answers ``direction``: by meaning, or by numeric code (pure)."""
        if self.direction is None:
            return True
        if self.direction.isdigit():
            return str(call.fields.get("direction_raw") or "").strip() == self.direction
        return direction_of(call.fields, self.direction_codes) == self.direction

    def unknown_code(self, call: ManifestEntry) -> str | None:
        """The call's numeric direction code when its meaning is unknown (pure)."""
        if direction_of(call.fields, self.direction_codes) is not None:
            return None
        raw = str(call.fields.get("direction_raw") or "").strip()
        return raw or None

    def matches_but_direction(self, call: ManifestEntry) -> bool:
        """Whether ``call`` answers every criterion other than the direction (pure)."""
        f = call.fields
        if not in_range(call, self.since, self.until):
            return False
        if self.phone is not None:
            wanted = phone_key(self.phone)
            numbers = (f.get("from_number"), f.get("to_number"))
            hashes = (f.get("from_number_hash"), f.get("to_number_hash"))
            if not any(n and phone_key(str(n)) == wanted for n in numbers) and not any(
                h in self.phone_hashes for h in hashes if isinstance(h, str)
            ):
                return False
        if self.extension is not None and str(f.get("extension") or "") != self.extension.strip():
            return False
        if self.agent is not None:
            wanted_agent = self.agent.strip().casefold()
            agents = (f.get("agent"), f.get("agent_name"))
            if not any(a and str(a).strip().casefold() == wanted_agent for a in agents):
                return False
        return True

    def describe(self) -> dict[str, str]:
        """The criteria given, for the audit record."""
        out = {}
        for name in ("phone", "extension", "agent", "direction"):
            value = getattr(self, name)
            if value is not None:
                out[name] = str(value)
        if self.phone_hashes:
            # With a key place, the audit trail (kept for years, maybe locked) links the
            # request to the number's calls by keyed hash, and does not name the number.
            del out["phone"]
            out["phone_hash"] = ",".join(sorted(self.phone_hashes))
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None:
                out[name] = moment.isoformat()
        return out


def _sort_key(call: ManifestEntry) -> tuple[str, str, str]:
    started = call.call_started_at.isoformat() if call.call_started_at else ""
    return (started, call.provider, call.cdr_id)


class Oldest:
    """The oldest ``limit`` matches so far, in order (memory bounded by the limit, not
    by the matches: a broad query over five years matches millions of lines)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._kept: list[tuple[tuple[str, str, str], int, ManifestEntry]] = []
        self._order = itertools.count()  # equal keys stay in the order found (stable)

    def add(self, call: ManifestEntry) -> None:
        """One more match."""
        kept, limit = self._kept, self.limit
        if limit is None:
            kept.append((_sort_key(call), next(self._order), call))
        elif len(kept) < limit or _sort_key(call) < kept[-1][0]:
            bisect.insort(kept, (_sort_key(call), next(self._order), call))
            del kept[limit:]

    def __len__(self) -> int:
        return len(self._kept)

    def __iter__(self) -> Iterator[ManifestEntry]:
        """The matches kept, oldest first."""
        if self.limit is None:
            self._kept.sort(key=lambda kept: kept[:2])
        return (call for _, _, call in self._kept)


class Sink(Protocol):
    """Where a search puts its matches."""

    def add(self, call: ManifestEntry) -> None: ...


async def collect(
    store: ObjectStore,
    manifests: Iterable[StoredObject],
    query: SearchQuery,
    sink: Sink,
    unknown_codes: Counter[str] | None = None,
) -> int:
    """Each matching call into ``sink``, in the order read; the count of damaged lines.

    With ``unknown_codes`` and a direction asked for by meaning: counts, by
    code, the calls that match everything else but whose direction is a
    numeric code of unknown meaning (they might be the ones looked for).
    """
    bad = 0
    # A call line a supersede record sets aside (archiver dedupe) is its call's second.
    superseded = (await read_records(store)).superseded()
    by_meaning = query.direction is not None and not query.direction.isdigit()
    async with aclosing(read_manifests(store, manifests)) as reader:
        async for manifest in reader:
            bad += len(manifest.bad_lines)
            for call, number in zip(manifest.calls, manifest.numbers, strict=True):
                if (manifest.key, number) in superseded:
                    continue
                if not query.matches_but_direction(call):
                    continue
                if query.matches_direction(call):
                    sink.add(call)
                elif unknown_codes is not None and by_meaning:
                    code = query.unknown_code(call)
                    if code is not None:
                        unknown_codes[code] += 1
    return bad


async def search(
    store: ObjectStore,
    manifests: Iterable[StoredObject],
    query: SearchQuery,
    limit: int | None = None,
    unknown_codes: Counter[str] | None = None,
) -> tuple[list[ManifestEntry], int]:
    """The matching calls, oldest first (at most ``limit``), and the count of damaged
    lines (:func:`collect`). Without a limit every match is held: the command line
    keeps them on its scratch file instead (:class:`Matches`)."""
    oldest = Oldest(limit)
    bad = await collect(store, manifests, query, oldest, unknown_codes)
    return list(oldest), bad


class Matches:
    """Every match on a scratch file (:mod:`archiver.retrieval.scratch`), given back
    oldest first: a search with no limit over five years matches millions of lines
    (about 4 KB each held in memory), and the count must be known (for the audit
    record) before the first is shown. ``names``: the columns of a line as it will be
    shown (a sealed line's, once opened), for the CSV's header."""

    def __init__(
        self, db: sqlite3.Connection, names: Callable[[Mapping[str, Any]], Iterable[str]] = iter
    ) -> None:
        self._db = db
        self._names = names
        db.execute(
            # Kept in the order shown (the key is the sort's): read back with no sort, so
            # SQLite writes no sort file outside ARCHIVER_SCRATCH_DIR. The sort key as
            # UTF-8 bytes, lone surrogates kept (a provider's id may hold one; SQLite refuses
            # it as text): compared byte by byte, the order of Python's strings.
            "CREATE TABLE search_matches (started BLOB NOT NULL, provider BLOB NOT NULL,"
            " cdr_id BLOB NOT NULL, n INTEGER NOT NULL, line TEXT NOT NULL, manifest_key TEXT,"
            " PRIMARY KEY (started, provider, cdr_id, n)) WITHOUT ROWID"
        )
        self._batch: list[tuple[bytes, bytes, bytes, int, str, str]] = []
        self._count = 0

    def add(self, call: ManifestEntry) -> None:
        """One more match (in the order found: equal keys keep it)."""
        line = json.dumps(call.fields, separators=(",", ":"))  # ASCII: a lone surrogate too
        started, provider, cdr_id = (to_bytes(part) for part in _sort_key(call))
        manifest_key = json.dumps(call.manifest_key)  # ASCII, as the line
        self._batch.append((started, provider, cdr_id, self._count, line, manifest_key))
        self._count += 1
        if len(self._batch) >= _MATCH_BATCH:
            self._flush()

    def __len__(self) -> int:
        return self._count

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO search_matches VALUES (?, ?, ?, ?, ?, ?)", self._batch)
        self._db.commit()
        self._batch = []

    def columns(self) -> list[str]:
        """Every field of the matches as shown, in the manifest's order (first seen first,
        oldest first: :func:`export_columns` of the calls in order), by a read of them."""
        columns: dict[str, None] = {}
        for fields, _ in self._rows():
            columns.update(dict.fromkeys(self._names(fields)))
        return list(columns)

    def _rows(self) -> Iterator[tuple[dict[str, Any], str | None]]:
        self._flush()
        rows = self._db.execute(MATCHES_IN_ORDER)
        for line, key in rows:
            yield json.loads(line), json.loads(key)

    def __iter__(self) -> Iterator[ManifestEntry]:
        """The matches oldest first (SQLite sorts them on disk)."""
        for fields, key in self._rows():
            yield ManifestEntry.from_line(fields, key)


def write_json(calls: Iterable[ManifestEntry], out: TextIO) -> None:
    """:func:`to_json`, written a call at a time."""
    first = True
    for call in calls:
        row = {**call.fields, "manifest_key": call.manifest_key}
        text = json.dumps(row, ensure_ascii=False, indent=2)
        if has_surrogate(text):  # not UTF-8: escaped, as JSON can say it (\udcff)
            text = json.dumps(row, indent=2)
        text = text.replace("\n", "\n  ")
        out.write(("[\n  " if first else ",\n  ") + text)
        first = False
    out.write("[]\n" if first else "\n]\n")


def write_csv(calls: Iterable[ManifestEntry], columns: Sequence[str], out: TextIO) -> None:
    """:func:`to_csv`, written a call at a time under the ``columns`` given."""
    writer = csv.DictWriter(
        out, fieldnames=[*columns, "manifest_key"], extrasaction="ignore", lineterminator="\n"
    )
    header = csv.writer(out, lineterminator="\n")  # writeheader(), names made printable
    header.writerow([printable(name) for name in writer.fieldnames])
    for call in calls:
        row: dict[str, Any] = {**call.fields, "manifest_key": call.manifest_key}
        writer.writerow({k: _cell(v) for k, v in row.items()})


def export_columns(calls: Iterable[ManifestEntry]) -> list[str]:
    """Every field of the lines, in the manifest's order (first seen first)."""
    columns: dict[str, None] = {}
    for call in calls:
        columns.update(dict.fromkeys(call.fields))
    return list(columns)


def to_json(calls: Sequence[ManifestEntry]) -> str:
    """A JSON array of the manifest lines, with the manifest object of each."""
    out = io.StringIO()
    write_json(calls, out)
    return out.getvalue()


def to_csv(calls: Sequence[ManifestEntry]) -> str:
    """CSV with a header: every manifest field, then the manifest object."""
    out = io.StringIO()
    write_csv(calls, export_columns(calls), out)
    return out.getvalue()


def _cell(value: object) -> object:
    # Spreadsheets run cells starting with = + - @ as formulas: a hostile agent
    # name must stay text (CSV injection). A phone number such as +84 90... is
    # left as it is.
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, str):
        return value
    value = printable(value)
    if value[:1] in _FORMULA_STARTS and not _NUMBERISH.fullmatch(value):
        return "'" + value
    return value
