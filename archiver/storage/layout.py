"""Where the manifest and its chain live in the storage (pure).

::

    manifests/date=YYYY-MM-DD/<seq:012>-<writer>.jsonl   one batch of lines
    _archiver/chain/<writer>/<seq:012>.json             its link (written once)
    _archiver/chain/<writer>/head.json                  the writer's latest link
    _archiver/chain/<writer>/<seq:012>.tsr              a trusted timestamp of that link
    _archiver/rollups/<writer>/<n:012>.entries.jsonl    rollup n: the links (and tokens) it covers
    _archiver/rollups/<writer>/<n:012>.jsonl            ... the covered manifest objects' bytes
    _archiver/rollups/<writer>/<n:012>.json             ... its record (written last)

``seq`` is the batch's number in its writer's state store and ``writer`` the
writer id kept there, so a manifest key names its own link. Manifests written
before the chain carry a run id where the writer id now is; they have no link
unless ``archiver seal`` gave them one.

It lives with the storage, not the manifest, because the storage's own rules
name these areas (which objects retention protects: :mod:`archiver.storage.protection`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, tzinfo

from archiver.models import CallRecord

MANIFEST_PREFIX = "manifests/"
ARCHIVER_PREFIX = "_archiver/"
CHAIN_PREFIX = "_archiver/chain/"
# Tombstones of disposed recordings (archiver.manifest.tombstone): evidence, locked.
TOMBSTONE_PREFIX = "_archiver/tombstones/"
# Rollups (archiver.manifest.rollup): a run of a writer's chain copied into three objects.
ROLLUP_PREFIX = "_archiver/rollups/"
MANIFEST_CONTENT_TYPE = "application/x-ndjson"
CHAIN_CONTENT_TYPE = "application/json"
HEAD_NAME = "head.json"

_PARTITION = "date="
_SUFFIX = ".jsonl"
# A writer id (or a pre-chain run id) is a plain token: it is part of object keys.
WRITER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class ManifestKey:
    """A manifest object's key, taken apart."""

    day: date
    seq: int
    writer: str

    def __str__(self) -> str:
        return manifest_key(self.day.isoformat(), self.seq, self.writer)


def manifest_date(call: CallRecord, tz: tzinfo) -> str:
    """The manifest partition of a call: its local date."""
    return call.started_at.astimezone(tz).strftime("%Y-%m-%d")


def manifest_key(day: str, seq: int, writer: str) -> str:
    """The key of batch ``seq`` of ``writer`` in partition ``day`` (YYYY-MM-DD)."""
    if not WRITER_ID.fullmatch(writer):
        raise ValueError(f"a writer id must be a plain token of up to 64 characters: {writer!r}")
    return f"{MANIFEST_PREFIX}{_PARTITION}{day}/{seq:012d}-{writer}{_SUFFIX}"


def parse_manifest_key(key: str) -> ManifestKey | None:
    """The parts of a manifest key, or None for a key that is not one."""
    if not key.startswith(MANIFEST_PREFIX + _PARTITION) or not key.endswith(_SUFFIX):
        return None
    partition, _, name = key[len(MANIFEST_PREFIX) + len(_PARTITION) :].partition("/")
    seq, _, writer = name[: -len(_SUFFIX)].partition("-")
    if not (seq.isascii() and seq.isdigit()) or not WRITER_ID.fullmatch(writer):
        return None
    try:
        day = date.fromisoformat(partition)
    except ValueError:
        return None
    if day.isoformat() != partition:
        return None
    return ManifestKey(day, int(seq), writer)


def partition_date(key: str) -> date | None:
    """The date of a manifest object's partition, or None for a key that is not one."""
    if not key.startswith(MANIFEST_PREFIX + _PARTITION):
        return None
    partition, slash, name = key[len(MANIFEST_PREFIX) + len(_PARTITION) :].partition("/")
    if not slash or not name or "/" in name:
        return None
    try:
        day = date.fromisoformat(partition)
    except ValueError:
        return None
    return day if day.isoformat() == partition else None


def link_key(writer: str, seq: int) -> str:
    """The key of a writer's link number ``seq``."""
    return f"{CHAIN_PREFIX}{writer}/{seq:012d}.json"


def stamp_key(writer: str, seq: int) -> str:
    """The key of the trusted timestamp (RFC 3161 token) of a writer's link ``seq``."""
    return f"{CHAIN_PREFIX}{writer}/{seq:012d}.tsr"


def head_key(writer: str) -> str:
    """The key of a writer's chain head."""
    return f"{CHAIN_PREFIX}{writer}/{HEAD_NAME}"


def parse_chain_key(key: str) -> tuple[str, int | None] | None:
    """(writer, seq) of a link key, (writer, None) of a head key, None for anything else."""
    if not key.startswith(CHAIN_PREFIX):
        return None
    writer, slash, name = key[len(CHAIN_PREFIX) :].partition("/")
    if not slash or not WRITER_ID.fullmatch(writer):
        return None
    if name == HEAD_NAME:
        return writer, None
    stem, dot, ext = name.partition(".")
    if ext != "json" or not dot or not (stem.isascii() and stem.isdigit()):
        return None
    return writer, int(stem)


# The three objects of one rollup, by the end of their name (longest first: ".jsonl"
# also ends ".entries.jsonl").
ROLLUP_RECORD = "record"
ROLLUP_ENTRIES = "entries"
ROLLUP_DATA = "data"
_ROLLUP_SUFFIXES = (
    (".entries.jsonl", ROLLUP_ENTRIES),
    (".jsonl", ROLLUP_DATA),
    (".json", ROLLUP_RECORD),
)


@dataclass(frozen=True, slots=True)
class RollupKey:
    """A rollup object's key, taken apart: its writer, its number, which part it is."""

    writer: str
    n: int
    part: str  # ROLLUP_RECORD, ROLLUP_ENTRIES or ROLLUP_DATA


def _rollup_stem(writer: str, n: int) -> str:
    if not WRITER_ID.fullmatch(writer):
        raise ValueError(f"a writer id must be a plain token of up to 64 characters: {writer!r}")
    if n < 1:
        raise ValueError(f"a rollup number starts at 1: {n}")
    return f"{ROLLUP_PREFIX}{writer}/{n:012d}"


def rollup_key(writer: str, n: int) -> str:
    """The key of rollup ``n``'s record (written last: the rollup's commit point)."""
    return _rollup_stem(writer, n) + ".json"


def rollup_entries_key(writer: str, n: int) -> str:
    """The key of rollup ``n``'s entries (the covered links and tokens; written first)."""
    return _rollup_stem(writer, n) + ".entries.jsonl"


def rollup_data_key(writer: str, n: int) -> str:
    """The key of rollup ``n``'s lines (the covered manifest objects' bytes, concatenated)."""
    return _rollup_stem(writer, n) + ".jsonl"


def parse_rollup_key(key: str) -> RollupKey | None:
    """The parts of a rollup object's key, or None for a key that is not one."""
    if not key.startswith(ROLLUP_PREFIX):
        return None
    writer, slash, name = key[len(ROLLUP_PREFIX) :].partition("/")
    if not slash or not WRITER_ID.fullmatch(writer):
        return None
    for suffix, part in _ROLLUP_SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            if len(stem) == 12 and stem.isascii() and stem.isdigit() and int(stem) >= 1:
                return RollupKey(writer, int(stem), part)
            return None
    return None
