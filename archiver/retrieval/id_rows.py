"""The rows of ``get``'s local id index (:mod:`archiver.retrieval.local_index`), made from bytes.

Pure, so that a large build from nothing can make them in worker processes:
a rollup's parts checked, and each covered object's ids found and hashed
(:func:`rollup_rows`), most of a cold build's CPU; the index's process only
reads the storage and writes SQLite.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
import sys
import unicodedata
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from itertools import chain

from archiver.manifest.reader import decoded_lines, line_ids
from archiver.manifest.rollup import RollupProblem
from archiver.manifest.rollup_read import RollupRead, RollupRef, check_parts

# Each id field, as json.dumps writes it, with its value when that is a plain string (in its
# quotes), else b"" (a number, null...): every field is found, so nothing is counted apart.
# One pattern per field: a pattern that starts with a long literal is searched for, not
# tried at each quote.
_ID_FIELDS = tuple(
    re.compile(rb'"' + name + rb'"\s*:\s*("[^"\\\n]*"|)') for name in (b"sip_call_id", b"cdr_id")
)
_BLAKE2B_8 = partial(hashlib.blake2b, digest_size=8)
_DIGEST = operator.methodcaller("digest")
# A proven_links row: (writer, seq, SHA-256 of the link's bytes, prev_seq, prev_sha256).
Hint = tuple[str, int, str, int | None, str | None]


def id_hash(ident: str) -> int:
    """The signed 64-bit hash of a normalized id (pure; stable across processes)."""
    digest = hashlib.blake2b(ident.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def id_hashes(idents: Iterable[bytes]) -> list[int]:
    """:func:`id_hash` of each of ``idents`` (normalized ids, UTF-8 with surrogatepass),
    in order: hashed and converted in C, a third of the time of one call each."""
    packed = array("q", b"".join(map(_DIGEST, map(_BLAKE2B_8, idents))))
    if sys.byteorder == "little":
        packed.byteswap()  # the digest is read big-endian
    return packed.tolist()


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
    return {ident.decode("utf-8", "surrogatepass") for ident in id_bytes(content)}


def id_bytes(content: bytes) -> set[bytes]:
    """:func:`manifest_ids` encoded as :func:`id_hash` hashes them (UTF-8, surrogatepass)."""
    quick = _quick_ids(content)
    if quick is None:
        return {
            ident.encode("utf-8", "surrogatepass")
            for line in decoded_lines(content)
            for ident in line_ids(line)
        }
    ids = set(quick)
    ids.discard(b"")
    return ids


def _quick_ids(content: bytes) -> list[bytes] | None:
    """The ids of an object found without decoding it (normalized, UTF-8, perhaps repeated
    or empty), or None when it must be decoded."""
    if b"\\" in content or b"\0" in content:
        return None
    found: list[bytes] = []
    for pattern in _ID_FIELDS:
        found += pattern.findall(content)
    if not found:
        return []
    joined = b"\n".join(found)
    parts = joined.split(b'"')
    # Each value in its quotes (and none holds one): '', id, '\n', id, ..., id, ''.
    if len(parts) != 2 * len(found) + 1 or parts[::2] != [b"", *[b"\n"] * (len(found) - 1), b""]:
        return None  # an id field whose value is not a plain string
    values = parts[1::2]
    # ASCII without whitespace: what normalizing leaves as it is. (A control character, which
    # str.strip() may strip too, is not valid raw in JSON: decoding finds no id in its line.)
    if joined.isascii() and joined.split() == found:
        return values
    ids = []
    for value in values:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
        text = (text if text.isascii() else unicodedata.normalize("NFC", text)).strip()
        ids.append(text.encode("utf-8"))
    return ids


def object_rows(key: str, content: bytes) -> tuple[str, list[int]]:
    """A manifest object's key and the sorted hashes of its ids: what the index stores."""
    return key, sorted(id_hashes(id_bytes(content)))


@dataclass(frozen=True, slots=True)
class RollupRows:
    """What one rollup gives the index, as the JSON texts SQLite takes apart
    (:mod:`archiver.retrieval.id_store`): its objects' keys and rows, and its links as
    hints (none when it does not check out); and what its check found wrong (to be
    logged). Texts, not lists: a worker's result crosses to the index's process as one
    string each, not 50,000 objects to unpickle."""

    key: str
    objects: str = "[]"  # [[manifest key, [hash, ...]], ...]
    keys: str = "[]"  # [manifest key, ...]
    hints: str = "[]"  # [[writer, seq, sha256, prev_seq, prev_sha256], ...]
    problems: list[RollupProblem] = field(default_factory=list)


def rows_of(read: RollupRead) -> RollupRows:
    """The index's rows of a rollup read (its objects when it checked out, else none)."""
    found = [(key, id_bytes(content)) for key, content in read.objects()]
    # Hashed all at once, then cut back into each object's.
    hashes = id_hashes(chain.from_iterable(ids for _, ids in found))
    batch = []
    start = 0
    for key, ids in found:
        batch.append((key, hashes[start : start + len(ids)]))
        start += len(ids)
    hints: list[Hint] = [(read.ref.writer, *link) for link in read.links]
    return RollupRows(
        read.ref.key,
        json.dumps(batch),
        json.dumps([key for key, _ in found]),
        json.dumps(hints),
        read.problems,
    )


def rollup_rows(ref: RollupRef, record: bytes, entries: bytes, data: bytes) -> RollupRows:
    """A rollup's parts checked exactly as :func:`~archiver.manifest.rollup_read.read_rollup`
    checks them, then its rows (pure: runs in a worker process)."""
    return rows_of(check_parts(ref, record, entries, data))
