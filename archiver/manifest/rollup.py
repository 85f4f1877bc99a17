"""Rollups: a run of a writer's chain copied into three large objects (pure).

The service writes a small manifest object (a few lines) and its link every
flush; a cold reader pays one request per object. Rollup ``n`` of writer ``W``
copies a contiguous run of W's chain, under ``_archiver/rollups/<W>/``:

1. ``<n:012>.entries.jsonl`` (written first): one line per covered link, oldest
   first, ``{"link": "<the link's exact text>", "seq": s, "token": "<base64 of
   its .tsr>" | null}``;
2. ``<n:012>.jsonl`` (the *rollup lines*, written second): the covered manifest
   objects' exact bytes, concatenated in chain order; object ``i`` is the slice
   given by the running sum of the links' ``manifest_size``;
3. ``<n:012>.json`` (the *record*, written last: the commit point): canonical
   JSON naming the run (first/last seq, the link before it, the SHA-256 of the
   last link), the SHA-256 and size of the two other objects, the dates
   covered and the SHA-256 of record ``n - 1``.

Nothing is rewritten or deleted: a rollup is only where the bytes may be read
from, once it checks out (:func:`check_rollup`). A covered line keeps its
identity (the small object's key and line number). Entries without a record
are an unfinished rollup: the next ``archiver rollup`` finishes it with the
same coverage (its data is fixed by the immutable objects it covers).
See docs/compliance.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from archiver.manifest.chain import Link, sha256_hex
from archiver.manifest.rollup_format import (
    MAX_ENTRIES_BYTES,
    MAX_RECORD_BYTES,
    ROLLUP_FORMAT,
    ROLLUP_MAX_BYTES,
    ROLLUP_MAX_OBJECTS,
    RollupEntry,
    RollupRecord,
    entries_to_bytes,
    parse_entries,
)
from archiver.storage.layout import (
    MANIFEST_PREFIX,
    partition_date,
    rollup_data_key,
    rollup_entries_key,
)

__all__ = [
    "MAX_ENTRIES_BYTES",
    "MAX_RECORD_BYTES",
    "ROLLUP_FORMAT",
    "ROLLUP_MAX_BYTES",
    "ROLLUP_MAX_OBJECTS",
    "CoveredObject",
    "RollupCheck",
    "RollupEntry",
    "RollupProblem",
    "RollupRecord",
    "build_rollup",
    "chain_problems",
    "EntriesCheck",
    "check_entries",
    "check_rollup",
    "covered_objects",
    "date_span",
    "entries_to_bytes",
    "parse_entries",
]


@dataclass(frozen=True, slots=True)
class CoveredObject:
    """One manifest object a rollup covers: its link (from the entries), its bytes' slice."""

    seq: int
    link: Link
    link_bytes: bytes
    link_sha256: str
    token: bytes | None
    offset: int  # where its bytes start in the rollup lines
    data: bytes = field(repr=False, compare=False)  # the whole rollup lines (shared)

    @property
    def manifest_key(self) -> str:
        """The small manifest object's key (a covered line keeps it as its identity)."""
        return self.link.manifest_key

    @property
    def manifest_bytes(self) -> bytes:
        """The covered manifest object's exact bytes (its slice of the rollup lines)."""
        return self.data[self.offset : self.offset + self.link.manifest_size]


@dataclass(frozen=True, slots=True)
class RollupProblem:
    """What is wrong with a rollup: the key of the part at fault, and why (one line)."""

    where: str
    detail: str


@dataclass
class RollupCheck:
    """A rollup checked from its own bytes: its covered objects, or what is wrong."""

    record: RollupRecord | None
    objects: list[CoveredObject]
    problems: list[RollupProblem]

    @property
    def ok(self) -> bool:
        """True when every part agrees with the others (the objects can be used)."""
        return not self.problems and self.record is not None


def chain_problems(
    entries: Sequence[RollupEntry], writer: str, links: Sequence[Link] | None = None
) -> list[str]:
    """What is wrong inside a run of entries (pure): each a link of ``writer`` under
    ``manifests/``, each naming the one before by its seq and SHA-256. ``links``: the
    entries' links already parsed (each parse costs as much as the rest of the check)."""
    problems: list[str] = []
    previous: tuple[int, str] | None = None
    for number, entry in enumerate(entries, start=1):
        try:
            link = links[number - 1] if links is not None else Link.from_bytes(entry.link)
        except ValueError as exc:
            problems.append(f"entries line {number}: unreadable link: {exc}")
            return problems
        if (link.writer, link.seq) != (writer, entry.seq):
            problems.append(
                f"entries line {number}: a link of {link.writer} {link.seq}, "
                f"in the place of {writer} {entry.seq}"
            )
        if not link.manifest_key.startswith(MANIFEST_PREFIX):
            problems.append(f"entries line {number}: link {link.seq} is not a manifest's")
        if previous is not None and (link.prev_seq, link.prev_sha256) != previous:
            problems.append(
                f"entries line {number}: link {link.seq} follows {link.prev_seq} "
                f"({link.prev_sha256}), not the line before ({previous[0]}, {previous[1]})"
            )
        previous = (link.seq, sha256_hex(entry.link))
    return problems


def covered_objects(
    entries: Sequence[RollupEntry], data: bytes, links: Sequence[Link] | None = None
) -> list[CoveredObject]:
    """Slice the rollup lines into the covered objects, by their links' sizes (pure;
    ``links``: the entries' links already parsed).

    ValueError when the links do not parse or the sizes do not add up to ``data``.
    """
    objects = []
    offset = 0
    for number, entry in enumerate(entries):
        link = links[number] if links is not None else Link.from_bytes(entry.link)
        objects.append(
            CoveredObject(
                entry.seq, link, entry.link, sha256_hex(entry.link), entry.token, offset, data
            )
        )
        offset += link.manifest_size
    if offset != len(data):
        raise ValueError(f"the links' sizes add up to {offset} bytes, the lines hold {len(data)}")
    return objects


def date_span(manifest_keys: Iterable[str]) -> tuple[str, str]:
    """(first, last) partition date of the manifest keys, YYYY-MM-DD ("" for none)."""
    days = sorted(d for key in manifest_keys if (d := partition_date(key)) is not None)
    return (days[0].isoformat(), days[-1].isoformat()) if days else ("", "")


def build_rollup(
    writer: str,
    n: int,
    entries: Sequence[RollupEntry],
    manifests: Sequence[bytes],
    *,
    prev_record: bytes | None,
    created_at: str,
) -> tuple[bytes, bytes, RollupRecord]:
    """The entries bytes, the rollup lines and the record of rollup ``n`` (pure).

    ``manifests[i]`` must be the bytes ``entries[i]``'s link records
    (ValueError otherwise): a rollup never copies bytes its chain does not prove.
    """
    if not entries or len(entries) != len(manifests):
        raise ValueError("a rollup covers at least one link, with one manifest object each")
    wrong = chain_problems(entries, writer)
    if wrong:
        raise ValueError(wrong[0])
    links = [Link.from_bytes(entry.link) for entry in entries]
    lines = 0
    for link, content in zip(links, manifests, strict=True):
        if (sha256_hex(content), len(content)) != (link.manifest_sha256, link.manifest_size):
            raise ValueError(f"{link.manifest_key} is not the object link {link.seq} records")
        lines += link.lines
    entries_bytes = entries_to_bytes(entries)
    data = b"".join(manifests)
    first, last = date_span(link.manifest_key for link in links)
    record = RollupRecord(
        writer=writer,
        n=n,
        first_seq=links[0].seq,
        last_seq=links[-1].seq,
        prev_seq=links[0].prev_seq,
        prev_sha256=links[0].prev_sha256,
        end_sha256=sha256_hex(entries[-1].link),
        objects=len(links),
        lines=lines,
        data_key=rollup_data_key(writer, n),
        data_sha256=sha256_hex(data),
        data_size=len(data),
        entries_key=rollup_entries_key(writer, n),
        entries_sha256=sha256_hex(entries_bytes),
        entries_size=len(entries_bytes),
        first_date=first,
        last_date=last,
        prev_rollup_sha256=sha256_hex(prev_record) if prev_record is not None else None,
        created_at=created_at,
    )
    return entries_bytes, data, record


def _record_against_entries(
    record: RollupRecord, links: Sequence[Link], entries: Sequence[RollupEntry]
) -> list[str]:
    wrong = []
    first, last = links[0], links[-1]
    expected = {
        "first_seq": first.seq,
        "last_seq": last.seq,
        "prev_seq": first.prev_seq,
        "prev_sha256": first.prev_sha256,
        "end_sha256": sha256_hex(entries[-1].link),
        "objects": len(links),
        "lines": sum(link.lines for link in links),
        "data_size": sum(link.manifest_size for link in links),
    }
    dates = date_span(link.manifest_key for link in links)
    expected["first_date"], expected["last_date"] = dates
    for name, value in expected.items():
        if getattr(record, name) != value:
            wrong.append(f"the record says {name} {getattr(record, name)}, its entries {value}")
    return wrong


@dataclass
class EntriesCheck:
    """A rollup's record and entries checked against each other (not its lines)."""

    record: RollupRecord | None
    entries: list[RollupEntry]
    problems: list[RollupProblem]
    links: list[Link] = field(default_factory=list)  # each entry's, parsed

    @property
    def ok(self) -> bool:
        """True when the record and its entries agree."""
        return not self.problems and self.record is not None


def check_entries(
    record_bytes: bytes, entries_bytes: bytes, key: str | None = None
) -> EntriesCheck:
    """A rollup's record (against its ``key`` when given) and its entries (pure): the
    entries' SHA-256 and size, their links chaining to each other and to the record's
    ``prev_seq/prev_sha256`` and ``end_sha256``, the counts, sizes and dates."""
    problems: list[RollupProblem] = []
    try:
        record = RollupRecord.from_bytes(record_bytes)
    except ValueError as exc:
        where = key or "rollup record"
        return EntriesCheck(None, [], [RollupProblem(where, f"unreadable: {exc}")])
    where = record.key
    if key is not None and key != where:
        problems.append(RollupProblem(key, f"the record says it is {where}"))
        where = key
    for name, wanted in (
        ("data_key", rollup_data_key(record.writer, record.n)),
        ("entries_key", rollup_entries_key(record.writer, record.n)),
    ):
        if getattr(record, name) != wanted:
            problems.append(RollupProblem(where, f"its {name} is {getattr(record, name)}"))
    sha = sha256_hex(entries_bytes)
    if (sha, len(entries_bytes)) != (record.entries_sha256, record.entries_size):
        problems.append(
            RollupProblem(
                record.entries_key,
                f"{len(entries_bytes)} bytes with SHA-256 {sha}; the record {where} records "
                f"{record.entries_size} bytes with SHA-256 {record.entries_sha256}",
            )
        )
    if problems:
        return EntriesCheck(record, [], problems)
    try:
        entries = parse_entries(entries_bytes)
    except ValueError as exc:
        return EntriesCheck(record, [], [RollupProblem(record.entries_key, str(exc))])
    if not entries:
        return EntriesCheck(record, [], [RollupProblem(record.entries_key, "no entries")])
    try:
        links: list[Link] | None = [Link.from_bytes(entry.link) for entry in entries]
    except ValueError:
        links = None  # chain_problems names the unreadable one
    wrong = chain_problems(entries, record.writer, links)
    if wrong or links is None:
        return EntriesCheck(record, [], [RollupProblem(record.entries_key, w) for w in wrong])
    wrong = _record_against_entries(record, links, entries)
    if wrong:
        return EntriesCheck(record, [], [RollupProblem(where, w) for w in wrong])
    return EntriesCheck(record, entries, [], links)


def check_rollup(
    record_bytes: bytes, entries_bytes: bytes, data_bytes: bytes, key: str | None = None
) -> RollupCheck:
    """A rollup from its three parts' bytes: its covered objects, each checked, or its problems.

    Checked: everything :func:`check_entries` checks, the SHA-256 and size of
    the lines the record records, and each object's slice against its link's
    ``manifest_sha256``. Not checked here: that the run is on the writer's
    chain (the caller walks the chain), and the tokens (they need the CA).
    """
    checked = check_entries(record_bytes, entries_bytes, key)
    record = checked.record
    if record is None or checked.problems:
        return RollupCheck(record, [], checked.problems)
    sha = sha256_hex(data_bytes)
    if (sha, len(data_bytes)) != (record.data_sha256, record.data_size):
        detail = (
            f"{len(data_bytes)} bytes with SHA-256 {sha}; the record {key or record.key} "
            f"records {record.data_size} bytes with SHA-256 {record.data_sha256}"
        )
        return RollupCheck(record, [], [RollupProblem(record.data_key, detail)])
    problems = []
    # The sizes add up: checked above.
    objects = covered_objects(checked.entries, data_bytes, checked.links)
    for obj in objects:
        digest = sha256_hex(obj.manifest_bytes)
        if digest != obj.link.manifest_sha256:
            problems.append(
                RollupProblem(
                    record.data_key,
                    f"the slice of {obj.manifest_key} has SHA-256 {digest}; link "
                    f"{obj.link.key} records {obj.link.manifest_sha256}",
                )
            )
    if problems:
        return RollupCheck(record, [], problems)
    return RollupCheck(record, objects, [])
