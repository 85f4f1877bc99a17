"""The id index: find a call's manifest line from its sip_call_id or cdr id.

``get`` finds a call in a local index of the manifests (the console's SQLite
index, built from the manifest objects and brought up to date by one listing
of ``manifests/`` before each lookup; see :mod:`archiver.commands.finding`):
the manifests are the record, so the index costs no request per recording
while archiving, and a machine that never saw the archive builds it from the
storage alone.

Archives written before that (and ``archiver reindex``) also hold pointer
objects, one small JSON object per archived recording and id::

    _archiver/ids/<hh>/<id>/<provider>.<cdr_id>.<sha256[:16]>.json

``<hh>`` is the first two hex digits of the SHA-256 of the id (256 folders,
so a local directory never holds a million entries), ``<id>`` and
``<cdr_id>`` are sanitized like every key segment. A recording gets one
pointer under its sip_call_id and, when different, one under its cdr id.
Where pointers exist, ``resolve`` lists the id's folder (one LIST) and holds
each pointer found to its manifest line: a pointer that names other bytes
than the manifest is refused, whatever the local index says. ``verify``
checks every pointer present against the manifest.

Pointers are written once (conditional writes), never rewritten in place,
and carry no retention: a derived copy, the manifest stays the record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from archiver.manifest.chain import Link, sha256_hex
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import decoded_lines, parse_manifest, read_object
from archiver.retrieval.errors import (
    AmbiguousIdError,
    CallNotFoundError,
    IntegrityError,
    IntegrityKind,
)
from archiver.storage.base import ObjectExistsError, ObjectStore, PutOutcome
from archiver.storage.keys import sanitize
from archiver.storage.layout import link_key, parse_manifest_key

log = logging.getLogger("archiver.index")

INDEX_PREFIX = "_archiver/ids/"
POINTER_CONTENT_TYPE = "application/json"
POINTER_FORMAT = 1


def normalize_id(ident: str) -> str:
    """An id as compared: NFC, surrounding whitespace stripped (as key sanitizing does)."""
    return unicodedata.normalize("NFC", ident).strip()


def id_prefix(ident: str) -> str:
    """The folder holding every pointer for ``ident`` (with its trailing slash)."""
    norm = normalize_id(ident)
    shard = hashlib.sha256(norm.encode("utf-8", "surrogatepass")).hexdigest()[:2]
    return f"{INDEX_PREFIX}{shard}/{sanitize(norm)}/"


def pointer_name(call: ManifestEntry) -> str:
    """The pointer's file name: unique per archived recording."""
    return f"{sanitize(call.provider, 32)}.{sanitize(call.cdr_id)}.{call.sha256[:16]}.json"


def pointer_keys(call: ManifestEntry) -> list[str]:
    """Where ``call``'s pointers go: under its sip_call_id and, if different, its cdr id."""
    idents = dict.fromkeys(normalize_id(i) for i in (call.sip_call_id, call.cdr_id) if i.strip())
    return [id_prefix(ident) + pointer_name(call) for ident in idents]


def pointer_body(call: ManifestEntry) -> bytes:
    """The pointer's bytes: the manifest line and the manifest object holding it."""
    body = {"format": POINTER_FORMAT, "manifest_key": call.manifest_key, "entry": call.fields}
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text.encode("utf-8")


def parse_pointer(data: bytes) -> ManifestEntry:
    """A pointer's manifest line; ValueError if it is not one."""
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if not isinstance(body, dict) or body.get("format") != POINTER_FORMAT:
        raise ValueError("not an index pointer (format 1)")
    manifest_key = body.get("manifest_key")
    return ManifestEntry.from_line(body.get("entry"), str(manifest_key) if manifest_key else None)


async def write_pointers(
    store: ObjectStore, calls: Sequence[ManifestEntry], concurrency: int = 16
) -> int:
    """Write every pointer of ``calls`` (already present ones are left alone); returns new ones.

    At most ``concurrency`` writes at once; the first failure cancels the rest
    and propagates (the caller's retry rewrites them all idempotently).
    """
    # A recording's pointers share one body: built and hashed once per recording.
    work: list[tuple[str, bytes, str]] = []
    for call in calls:
        body = pointer_body(call)
        digest = hashlib.sha256(body).hexdigest()
        work += [(key, body, digest) for key in pointer_keys(call)]
    created = 0

    async def worker(queue: list[tuple[str, bytes, str]]) -> None:
        nonlocal created
        while queue:
            key, body, digest = queue.pop()
            try:
                written = await store.put_bytes(
                    key, body, sha256=digest, content_type=POINTER_CONTENT_TYPE
                )
            except ObjectExistsError:
                # The same recording listed again in a later manifest line (an
                # archive rebuilt on an empty state): the first pointer stays.
                log.debug("index pointer %s already written with another line", key)
                continue
            if written.outcome is PutOutcome.CREATED:
                created += 1

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(work))):
                group.create_task(worker(work))
    except ExceptionGroup as failed:
        # The first failure is the one to report (the others are the same outage),
        # as the error type callers handle, not a group.
        raise failed.exceptions[0] from None
    return created


async def index_manifest(store: ObjectStore, manifest_key: str, content: bytes) -> int:
    """Write the pointers of one manifest object's lines; returns how many were new.

    Used to give an archive pointers for its manifests after the fact (tests of
    legacy archives). A line that cannot be read is logged and skipped: the
    manifest stays the record, and ``verify`` reports the line.
    """
    manifest = parse_manifest(manifest_key, content)
    for bad in manifest.bad_lines:
        log.warning("%s line %d not indexed: %s", manifest_key, bad.line_number, bad.reason)
    return await write_pointers(store, manifest.calls)


async def lookup(store: ObjectStore, ident: str) -> list[ManifestEntry]:
    """Every archived call whose sip_call_id or cdr id is ``ident``, from the index."""
    wanted = normalize_id(ident)
    if not wanted:
        return []
    found: dict[tuple[str, str, str], ManifestEntry] = {}
    async for obj in store.list(id_prefix(wanted)):
        try:
            call = parse_pointer(await read_object(store, obj.key))
        except KeyError:
            continue  # removed between the listing and the read
        except ValueError as exc:
            log.warning("index pointer %s is unreadable (%s): skipped", obj.key, exc)
            continue
        if wanted in (normalize_id(call.sip_call_id), normalize_id(call.cdr_id)):
            found.setdefault((call.provider, call.cdr_id, call.sha256), call)
    return list(found.values())


def choose(
    ident: str, calls: Iterable[ManifestEntry], provider: str | None = None
) -> ManifestEntry:
    """The one call ``ident`` names; CallNotFoundError or AmbiguousIdError otherwise (pure)."""
    matches = [c for c in calls if provider is None or c.provider == provider]
    if not matches:
        where = f" from provider {provider}" if provider else ""
        raise CallNotFoundError(f"no archived call with id {ident!r}{where}")
    if len(matches) > 1:
        listed = "; ".join(
            f"{c.provider} cdr {c.cdr_id} (sip_call_id {c.sip_call_id}, "
            f"started {c.call_started_at.isoformat() if c.call_started_at else 'unknown'})"
            for c in sorted(matches, key=lambda c: (c.provider, c.cdr_id))
        )
        raise AmbiguousIdError(
            f"id {ident!r} names {len(matches)} archived calls: {listed}; "
            "ask for one by its cdr id (and --provider if needed)"
        )
    return matches[0]


async def resolve(
    store: ObjectStore,
    ident: str,
    provider: str | None = None,
    indexed: Iterable[ManifestEntry] = (),
    contents: Mapping[str, bytes] | None = None,
) -> ManifestEntry:
    """The archived call ``ident`` names, checked against its manifest object.

    ``indexed`` are the calls the local index of the manifests gives for
    ``ident``; pointers found in storage (legacy archives, ``reindex``) are
    added, each first held to its manifest line. The manifest (locked by
    Object Lock where enabled) is the record: a pointer or index row that
    does not match a line of the manifest it names raises IntegrityError
    rather than leading to other bytes. ``contents`` are manifest objects the
    caller has just read (by key): not read again.
    """
    found: dict[tuple[str, str, str], ManifestEntry] = {}
    for call in await lookup(store, ident):
        await confirm_in_manifest(store, call)
        found.setdefault((call.provider, call.cdr_id, call.sha256), call)
    wanted = normalize_id(ident)
    for call in indexed:
        if wanted in (normalize_id(call.sip_call_id), normalize_id(call.cdr_id)):
            found.setdefault((call.provider, call.cdr_id, call.sha256), call)
    call = choose(ident, found.values(), provider)
    await confirm_in_manifest(store, call, (contents or {}).get(call.manifest_key or ""))
    return call


async def confirm_in_manifest(
    store: ObjectStore, call: ManifestEntry, content: bytes | None = None
) -> None:
    """IntegrityError unless ``call``'s manifest object has this exact line and, for a line
    with proof (v2), is the object its chain link records. ``content``: the object's bytes,
    if the caller has them (else they are read)."""
    if call.manifest_key is None:
        raise IntegrityError(
            IntegrityKind.INDEX_MISMATCH,
            f"index entry for {call.sip_call_id} names no manifest object",
        )
    if content is None:
        try:
            content = await read_object(store, call.manifest_key)
        except KeyError:
            raise IntegrityError(
                IntegrityKind.MISSING,
                f"manifest object {call.manifest_key} (recording {call.sip_call_id}) is missing",
            ) from None
    if not has_line(content, call.fields):
        raise IntegrityError(
            IntegrityKind.INDEX_MISMATCH,
            f"the index entry for {call.sip_call_id} (cdr {call.cdr_id}) does not match "
            f"its manifest object {call.manifest_key}",
        )
    if not call.legacy:
        await confirm_linked(store, call.manifest_key, content)


def has_line(content: bytes, fields: Mapping[str, object]) -> bool:
    """Whether a line of ``content`` decodes to exactly ``fields`` (pure). Decoding is
    enough: ``fields`` came from a line that passed ManifestEntry's checks, and so would
    an equal one; the rest of the object's lines are not validated for one lookup."""
    return any(line == fields for line in decoded_lines(content))


async def confirm_linked(store: ObjectStore, manifest_key: str, content: bytes) -> None:
    """IntegrityError unless the manifest object's chain link records exactly ``content``
    (CORRUPT for an object not named like one of a chain)."""
    parsed = parse_manifest_key(manifest_key)
    if parsed is None:
        raise IntegrityError(
            IntegrityKind.CORRUPT,
            f"manifest object {manifest_key} is not named like one of a chain",
        )
    where = link_key(parsed.writer, parsed.seq)
    try:
        link = Link.from_bytes(await read_object(store, where))
    except KeyError:
        raise IntegrityError(
            IntegrityKind.MISSING,
            f"manifest object {manifest_key} is in no chain: its link {where} is missing",
        ) from None
    except ValueError as exc:
        raise IntegrityError(
            IntegrityKind.CORRUPT, f"the chain link {where} is unreadable: {exc}"
        ) from None
    if (link.manifest_key, link.manifest_sha256) != (manifest_key, sha256_hex(content)):
        raise IntegrityError(
            IntegrityKind.CORRUPT,
            f"manifest object {manifest_key} was altered: its SHA-256 is not the one its "
            f"chain link {where} records",
        )
