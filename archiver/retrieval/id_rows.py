"""The rows of ``get``'s local id index (:mod:`archiver.retrieval.local_index`), made from bytes.

Pure, so that a large build from nothing can make them in worker processes:
a rollup's parts checked, and each covered object's ids found and hashed
(:func:`rollup_rows`), most of a cold build's CPU; the index's process only
reads the storage and writes SQLite.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

from archiver.manifest.reader import decoded_lines, line_ids
from archiver.manifest.rollup import RollupProblem
from archiver.manifest.rollup_read import RollupRead, RollupRef, check_parts

# An id field with a plain string value, as json.dumps writes it.
_ID_FIELD = re.compile(rb'"(?:sip_call_id|cdr_id)"\s*:\s*"([^"\\\n]*)"')
# A proven_links row: (writer, seq, SHA-256 of the link's bytes, prev_seq, prev_sha256).
Hint = tuple[str, int, str, int | None, str | None]


def id_hash(ident: str) -> int:
    """The signed 64-bit hash of a normalized id (pure; stable across processes)."""
    digest = hashlib.blake2b(ident.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def manifest_ids(content: bytes) -> set[str]:
    """Every normalized sip_call_id and cdr id of a manifest object's lines (pure).

    Only what the index needs is read: a line that is not a JSON object, or
    has no ids, adds nothing (``get`` checks the line it serves in full). An
    object as the archiver writes it (no escape, no NUL, each id field a
    plain string) is searched for its ids instead of decoded, a tenth of the
    work; any other is decoded line by line. An id taken from a place
    decoding would not (a nested object, a key given twice, a line that is
    not JSON) only costs a lookup one more read: the index may name too many
    objects, never too few.
    """
    quick = _quick_ids(content)
    if quick is not None:
        return quick
    return {ident for line in decoded_lines(content) for ident in line_ids(line)}


def _quick_ids(content: bytes) -> set[str] | None:
    """The ids of an object found without decoding it, or None when it must be decoded."""
    if b"\\" in content or b"\0" in content:
        return None
    values = _ID_FIELD.findall(content)
    if len(values) != content.count(b'"sip_call_id"') + content.count(b'"cdr_id"'):
        return None  # an id field whose value is not a plain string (a number, null...)
    ids = set()
    for value in set(values):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
        ids.add((text if text.isascii() else unicodedata.normalize("NFC", text)).strip())
    ids.discard("")
    return ids


def object_rows(key: str, content: bytes) -> tuple[str, list[int]]:
    """A manifest object's key and the sorted hashes of its ids: what the index stores."""
    return key, sorted({id_hash(i) for i in manifest_ids(content)})


@dataclass(frozen=True, slots=True)
class RollupRows:
    """What one rollup gives the index: its objects' rows and its links as hints (none
    when it does not check out), and what its check found wrong (to be logged)."""

    key: str
    batch: list[tuple[str, list[int]]] = field(default_factory=list)
    hints: list[Hint] = field(default_factory=list)
    problems: list[RollupProblem] = field(default_factory=list)


def rows_of(read: RollupRead) -> RollupRows:
    """The index's rows of a rollup read (its objects when it checked out, else none)."""
    batch = [object_rows(key, content) for key, content in read.objects()]
    hints: list[Hint] = [(read.ref.writer, *link) for link in read.links]
    return RollupRows(read.ref.key, batch, hints, read.problems)


def rollup_rows(ref: RollupRef, record: bytes, entries: bytes, data: bytes) -> RollupRows:
    """A rollup's parts checked exactly as :func:`~archiver.manifest.rollup_read.read_rollup`
    checks them, then its rows (pure: runs in a worker process)."""
    return rows_of(check_parts(ref, record, entries, data))
