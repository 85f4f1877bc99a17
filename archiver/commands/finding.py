"""Find one archived call for ``get`` and ``hold``: the local id index, then the manifest
objects it names.

The id index (:mod:`archiver.retrieval.local_index`) lives in the console's
SQLite file (``ARCHIVER_CONSOLE__INDEX_PATH``), a cache of the storage: before
each lookup it reads the manifest objects it has not seen, so a machine that
never saw the archive builds it from the storage alone on its first ``get``
(listing every manifest key), and later ones ask only for the chain links
written since (:mod:`archiver.retrieval.index_refresh`), then cost an indexed
SELECT and the read of the manifest object named. An id that is not found,
or found only in lines the chain refuses, is looked for again after a full
listing: a warm index never answers "not found" alone. Where that file
cannot be opened (a read-only directory), the index is built in memory for
this one command, and a warning says so.

An id the index does not know is only "not found" if no manifest object is
missing: the chain's links name every manifest object ever written, so a
link whose manifest object is gone (deleted, or hidden behind a delete
marker) makes ``get`` refuse (IntegrityError, exit 5) rather than say the
call was never archived: it may have been in that object.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from archiver.index_db import IndexDatabase
from archiver.manifest.chain import Link
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import decoded_lines, line_ids, read_object
from archiver.manifest.seal import SEAL_PREFIX
from archiver.manifest.supersede import SUPERSEDE_PREFIX, parse_record_key
from archiver.retrieval import index_refresh, proven_links
from archiver.retrieval.errors import CallNotFoundError, IntegrityError, IntegrityKind
from archiver.retrieval.index import choose, has_line, lookup, normalize_id
from archiver.retrieval.local_index import SCHEMA, IdIndex
from archiver.retrieval.orphans import OrphanRule, no_recording_without_line
from archiver.retrieval.proof import ChainProver
from archiver.settings import ConsoleSettings
from archiver.storage import ObjectStore
from archiver.storage.layout import (
    CHAIN_PREFIX,
    MANIFEST_PREFIX,
    link_key,
    parse_chain_key,
    parse_manifest_key,
)

log = logging.getLogger("archiver.get")
# Sequence numbers kept in a writer's bitmap (16 MiB at most).
_BITMAP_SEQS = 1 << 27
# The default of ARCHIVER_CONSOLE__INDEX_FULL_LISTING_HOURS.
DEFAULT_FULL_LISTING = timedelta(hours=24)


def full_listing_age(console: ConsoleSettings) -> timedelta:
    """``ARCHIVER_CONSOLE__INDEX_FULL_LISTING_HOURS`` as a duration."""
    return timedelta(hours=console.index_full_listing_hours)


def _open(path: Path) -> IndexDatabase:
    try:
        return IndexDatabase(path, SCHEMA)
    except sqlite3.Error as exc:
        log.warning(
            "the local index %s cannot be opened (%s): built in memory for this command",
            path,
            exc,
        )
        return IndexDatabase(Path(":memory:"), SCHEMA)


@dataclass(frozen=True, slots=True)
class Located:
    """The call an id names, proven in the chain; ``refused``: other lines with the id that
    are not (forged beside the chain, or cut from it), each with why."""

    call: ManifestEntry
    refused: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Found:
    """What the index and the pointers give for an id: manifest objects read (by key),
    the lines with the id, and why some could not be read."""

    contents: dict[str, bytes]
    candidates: list[ManifestEntry]
    refused: list[IntegrityError]
    final: bool = True  # False: the index was not listed in full, a miss is looked for again


async def find_call(
    store: ObjectStore,
    index_path: Path,
    ident: str,
    provider: str | None = None,
    *,
    full_after: timedelta | None = None,
) -> ManifestEntry:
    """The archived call ``ident`` names, proven in the chain (see :func:`locate`)."""
    return (await locate(store, index_path, ident, provider, full_after=full_after)).call


async def locate(
    store: ObjectStore,
    index_path: Path,
    ident: str,
    provider: str | None = None,
    *,
    orphans: OrphanRule | None = None,
    full_after: timedelta | None = None,
) -> Located:
    """The archived call ``ident`` names, its manifest object proven in the chain.

    ``index_path`` is the local index's file (created if missing). Every line
    with the id is held to the chain (:class:`ChainProver`): a line outside it
    (a forgery reusing a real call's id, a batch cut from the chain) never
    hides the genuine call; it is served when it alone is proven, and the
    others are listed in ``Located.refused``. Raises AmbiguousIdError when
    several proven lines answer, IntegrityError when only unproven ones do,
    and CallNotFoundError when none does; before that, with ``orphans``, a
    recording of that id still in the storage with no line, older than the
    rule's bound, raises IntegrityError (CUT): its line was cut or never written.
    ``full_after``: the age of the index's last full listing past which it lists
    every manifest key again (``ARCHIVER_CONSOLE__INDEX_FULL_LISTING_HOURS``).
    """
    full_after = DEFAULT_FULL_LISTING if full_after is None else full_after
    keys, listed = await _manifests_of(store, index_path, ident, full_after)
    kept = proven_links.KeptLinks(index_path)
    try:
        try:
            return await _located(store, index_path, ident, provider, orphans, keys, kept, listed)
        except (CallNotFoundError, IntegrityError):
            if listed:
                raise
        # Not found, or only refused lines, in a warm index: an object written outside
        # the chain's watermarks (or a forgery beside it) is seen by a full listing only.
        keys, _ = await _manifests_of(store, index_path, ident, full_after, full=True)
        kept.forget_pages()
        return await _located(store, index_path, ident, provider, orphans, keys, kept, True)
    finally:
        kept.close()


async def _located(
    store: ObjectStore,
    index_path: Path,
    ident: str,
    provider: str | None,
    orphans: OrphanRule | None,
    keys: list[str],
    kept: proven_links.KeptLinks,
    final: bool,
) -> Located:
    """:func:`locate` over the manifest objects ``keys`` the index gave; not ``final``: a
    miss is said at once (a full listing follows), without the checks a miss costs."""
    contents: dict[str, bytes] = {}
    refused: list[IntegrityError] = []
    candidates: list[ManifestEntry] = []
    for key in keys:
        try:
            contents[key] = await _read_manifest(store, key, ident)
        except IntegrityError as exc:
            refused.append(exc)
            continue
        candidates += lines_with(key, contents[key], ident)
    for call in await lookup(store, ident):  # pointer objects of older archives
        key = call.manifest_key or ""
        if key not in contents:
            try:
                contents[key] = await _read_manifest(store, key, ident)
            except IntegrityError as exc:
                refused.append(exc)
                continue
        candidates.append(call)
    prover = ChainProver(store, kept)
    try:
        found = _Found(contents, candidates, refused, final)
        return await _proven_one(store, prover, ident, provider, orphans, found)
    finally:
        await proven_links.save(index_path, prover.added())


async def _proven_one(
    store: ObjectStore,
    prover: ChainProver,
    ident: str,
    provider: str | None,
    orphans: OrphanRule | None,
    found: _Found,
) -> Located:
    """The one line found the chain proves, or why none (see :func:`locate`)."""
    contents, candidates, refused = found.contents, found.candidates, found.refused
    proven: dict[tuple[str, str, str], ManifestEntry] = {}
    wanted = normalize_id(ident)
    for call in candidates:
        if provider is not None and call.provider != provider:
            continue
        if wanted not in (normalize_id(call.sip_call_id), normalize_id(call.cdr_id)):
            continue
        key = call.manifest_key or ""
        try:
            await _prove_line(prover, call, key, contents[key])
        except IntegrityError as exc:
            refused.append(IntegrityError(exc.kind, f"{call.describe()} in {key}: {exc}"))
            continue
        proven.setdefault((call.provider, call.cdr_id, call.sha256), call)
    if proven:
        call = choose(ident, proven.values(), provider)
        return Located(call, [str(exc) for exc in refused])
    if refused:
        raise refused[0]
    if not found.final:
        raise CallNotFoundError(f"no archived call with id {ident!r} in the index as kept")
    # The index names them but none has the line: unless each is the object its
    # chain proves (then the hash merely collided), the manifest was changed after
    # it was indexed, and the line may have been removed.
    for key, content in contents.items():
        await prover.prove(key, content)
    await _no_manifest_missing(store)
    if orphans is not None:
        await no_recording_without_line(store, ident, orphans)
    where = f" from provider {provider}" if provider else ""
    raise CallNotFoundError(f"no archived call with id {ident!r}{where}")


async def _prove_line(prover: ChainProver, call: ManifestEntry, key: str, content: bytes) -> None:
    """IntegrityError unless ``content`` has exactly this line and the chain proves it."""
    if not has_line(content, call.fields):
        raise IntegrityError(
            IntegrityKind.INDEX_MISMATCH,
            f"an index pointer for {call.sip_call_id} (cdr {call.cdr_id}) does not "
            f"match its manifest object {key}",
        )
    await prover.prove(key, content)


async def _manifests_of(
    store: ObjectStore, index_path: Path, ident: str, full_after: timedelta, *, full: bool = False
) -> tuple[list[str], bool]:
    """The manifest keys the local index gives for ``ident``, brought up to date first, and
    whether every manifest key was listed for it.

    A file another process keeps locked for writing past SQLite's busy timeout
    (the console building its index in the same file) is left to it: the index
    is built in memory for this command instead of failing it.
    """
    db = _open(index_path)
    try:
        return await _ask(db, store, ident, full_after, full)
    except sqlite3.OperationalError as exc:
        if str(db.path) == ":memory:":
            raise
        log.warning("the local index %s is busy (%s): built in memory instead", db.path, exc)
    finally:
        db.close()
    memory = IndexDatabase(Path(":memory:"), SCHEMA)
    try:
        return await _ask(memory, store, ident, full_after, full)
    finally:
        memory.close()


async def _ask(
    db: IndexDatabase, store: ObjectStore, ident: str, full_after: timedelta, full: bool
) -> tuple[list[str], bool]:
    ids = IdIndex(db)
    listed = await index_refresh.update(ids, store, full_after=full_after, full=full)
    return await ids.manifests_of(ident), listed


async def _read_manifest(store: ObjectStore, manifest_key: str, ident: str) -> bytes:
    try:
        return await read_object(store, manifest_key)
    except KeyError:
        pass
    parsed = parse_manifest_key(manifest_key)
    if parsed is not None and await store.head(link_key(parsed.writer, parsed.seq)) is None:
        raise IntegrityError(
            IntegrityKind.CUT,
            f"the line of {ident} was cut: manifest object {manifest_key} (indexed here as "
            "holding it) and its chain link are gone; run archiver verify",
        )
    raise IntegrityError(
        IntegrityKind.MISSING,
        f"manifest object {manifest_key} (indexed as holding {ident}) is missing",
    )


def lines_with(manifest_key: str, content: bytes, ident: str) -> list[ManifestEntry]:
    """The lines of one manifest object whose sip_call_id or cdr id is ``ident`` (pure).

    Every line is decoded, but only those with the id are checked as manifest
    lines (a thousand-line object costs a lookup milliseconds, not tens); a
    line with the id that is not a valid one is left out, as
    :func:`~archiver.manifest.reader.parse_manifest` leaves it out.
    """
    wanted = normalize_id(ident)
    found = []
    for line in decoded_lines(content):
        if wanted in line_ids(line):
            try:
                found.append(ManifestEntry.from_line(line, manifest_key))
            except ValueError:
                continue
    return found


async def _no_manifest_missing(store: ObjectStore) -> None:
    """IntegrityError if a chain link names a manifest object the storage no longer lists.

    Two listings and no read: a link's key and its manifest object's key both
    carry the writer and the sequence number.
    """
    present = _Present()
    async for obj in store.list(MANIFEST_PREFIX):
        parsed = parse_manifest_key(obj.key)
        if parsed is not None:
            present.add(parsed.writer, parsed.seq)
    # Supersede records are chained too (by archiver dedupe): their links name them.
    async for obj in store.list(SUPERSEDE_PREFIX):
        record = parse_record_key(obj.key)
        if record is not None:
            present.add(*record)
    async for obj in store.list(CHAIN_PREFIX):
        link = parse_chain_key(obj.key)
        if link is None or link[1] is None or present.has(link[0], link[1]):
            continue
        if link[0].startswith(SEAL_PREFIX):
            # A seal's links name legacy objects (any key of a date partition): each asked for.
            missing = await _sealed_missing(store, obj.key)
            if missing is None:
                continue
            raise IntegrityError(IntegrityKind.MISSING, missing)
        raise IntegrityError(
            IntegrityKind.MISSING,
            f"manifest object {link[1]} of writer {link[0]} is missing (its chain link "
            f"{link_key(link[0], link[1])} is there): the call may have been in it",
        )


async def _sealed_missing(store: ObjectStore, key: str) -> str | None:
    """What is missing of the legacy object the seal's link at ``key`` names (None: the
    object is there, or the link went since the listing)."""
    try:
        named = Link.from_bytes(await read_object(store, key)).manifest_key
    except KeyError:
        return None
    except ValueError:
        return (
            f"the seal's chain link {key} cannot be read: the legacy object it names, "
            "where the call may have been, cannot be checked"
        )
    if await store.head(named) is not None:
        return None
    return (
        f"legacy manifest object {named} is missing (the seal's chain link {key} is "
        "there): the call may have been in it"
    )


class _Present:
    """A set of (writer, seq) kept as a bitmap per writer: a bit a sequence number, not a
    tuple of about 150 bytes (1.25 million manifest objects at five million calls). Numbers
    past :data:`_BITMAP_SEQS` (never a real chain's) go to a plain set."""

    def __init__(self) -> None:
        self._bits: dict[str, bytearray] = {}
        self._others: set[tuple[str, int]] = set()

    def add(self, writer: str, seq: int) -> None:
        if not 0 <= seq < _BITMAP_SEQS:
            self._others.add((writer, seq))
            return
        bits = self._bits.setdefault(writer, bytearray())
        if seq // 8 >= len(bits):
            bits.extend(bytes(seq // 8 + 1 - len(bits)))
        bits[seq // 8] |= 1 << (seq % 8)

    def has(self, writer: str, seq: int) -> bool:
        if not 0 <= seq < _BITMAP_SEQS:
            return (writer, seq) in self._others
        bits = self._bits.get(writer)
        return bits is not None and seq // 8 < len(bits) and bool(bits[seq // 8] >> (seq % 8) & 1)
