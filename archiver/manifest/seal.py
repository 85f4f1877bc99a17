"""``archiver seal``: bring manifest objects written before the chain under one.

Every manifest object that no link records and whose lines are all legacy
(written before proof was recorded) gets a link, in key order, in a new chain
of its own (writer ``seal-<random>``); the head moves after each link, so a
seal stopped half-way leaves a valid, shorter chain and running it again seals
the rest. No manifest object is rewritten: the links only record their
SHA-256. A manifest object with proof lines but no link is not sealed: its
writer links it when it runs again, and ``verify`` reports it until then.

An archive is sealed once: before linking anything, the first seal records
the set of legacy objects it vouches for in ``_archiver/chain/<seal>/sealed.json``
(written once, under retention like the links; the objects earlier seals
linked included, so an archive sealed before records existed is recorded by
running ``seal`` once more). No archiver writes legacy lines any more, so a
legacy object that no record names is planted history: a later seal refuses
it (``verify`` reports it OUT-OF-CHAIN) instead of vouching for it; one a
record names but no link (a seal stopped half-way) is linked by the next.
The seal's writer, like any other, counts only once registered with a
witness key (``archiver witness register``).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from archiver.manifest.chain import Link, next_link, sha256_hex
from archiver.manifest.reader import parse_manifest, read_object
from archiver.manifest.writer import advance_head
from archiver.storage.base import ObjectStore
from archiver.storage.layout import (
    CHAIN_CONTENT_TYPE,
    CHAIN_PREFIX,
    MANIFEST_PREFIX,
    parse_chain_key,
    partition_date,
)


@dataclass(frozen=True, slots=True)
class Sealed:
    """What a seal did."""

    writer: str | None  # the new chain's writer id, None if nothing needed sealing
    sealed: int  # manifest objects linked now
    chained: int  # manifest objects already under a chain
    skipped: list[str]  # manifest objects with proof lines but no link (left to their writer)
    refused: list[str]  # legacy objects that appeared after the archive was sealed
    sealed_by: list[str]  # the seal chains already there
    recorded: bool = False  # this seal wrote the archive's seal record (first seal, upgrade)


SEAL_PREFIX = "seal-"
RECORD_NAME = "sealed.json"


async def chained_manifests(store: ObjectStore, seals: set[str] | None = None) -> set[str]:
    """The manifest keys some link records (one listing, one read per link); the
    seal writers found (with a link or a record) are added to ``seals``."""
    keys: set[str] = set()
    async for obj in store.list(CHAIN_PREFIX):
        writer = obj.key[len(CHAIN_PREFIX) :].partition("/")[0]
        if seals is not None and writer.startswith(SEAL_PREFIX):
            seals.add(writer)
        parsed = parse_chain_key(obj.key)
        if parsed is None or parsed[1] is None:
            continue
        try:
            keys.add(Link.from_bytes(await read_object(store, obj.key)).manifest_key)
        except (KeyError, ValueError):
            continue  # verify reports a broken link; sealing does not repair chains
    return keys


def record_key(writer: str) -> str:
    """Where a seal records the set of manifest objects it seals."""
    return f"{CHAIN_PREFIX}{writer}/{RECORD_NAME}"


async def recorded(store: ObjectStore, seals: set[str]) -> tuple[set[str], bool]:
    """The manifest keys the seals' records name, and whether any record exists."""
    keys: set[str] = set()
    found = False
    for writer in sorted(seals):
        try:
            body = json.loads(await read_object(store, record_key(writer)))
        except (KeyError, ValueError):
            continue  # a seal from before records (or a damaged one): not a record
        if isinstance(body, dict) and isinstance(body.get("objects"), list):
            found = True
            keys.update(str(o.get("key")) for o in body["objects"] if isinstance(o, dict))
    return keys, found


async def _legacy(store: ObjectStore, key: str) -> tuple[bytes, int] | None:
    """The bytes and line count of a manifest object whose lines are all legacy."""
    try:
        content = await read_object(store, key)
    except KeyError:
        return None
    manifest = parse_manifest(key, content)
    if any(not call.legacy for call in manifest.calls):
        return None
    return content, len(manifest.calls) + len(manifest.bad_lines)


async def seal(store: ObjectStore) -> Sealed:
    """Link every unchained legacy manifest object; see the module docstring."""
    seals: set[str] = set()
    chained = await chained_manifests(store, seals)
    known, has_record = await recorded(store, seals)
    candidates = sorted(
        [
            obj.key
            async for obj in store.list(MANIFEST_PREFIX)
            if partition_date(obj.key) is not None and obj.key not in chained
        ]
    )
    writer = f"{SEAL_PREFIX}{secrets.token_hex(6)}"
    skipped: list[str] = []
    refused: list[str] = []
    todo: list[tuple[str, bytes, int]] = []
    for key in candidates:
        found = await _legacy(store, key)
        if found is None:
            skipped.append(key)
        elif has_record and key not in known:
            refused.append(key)  # appeared after the archive was sealed
        else:
            todo.append((key, *found))
    if not has_record:
        # The first seal (or the upgrade of one made before records): it records every
        # legacy object it vouches for, those earlier seals linked included.
        objects = [{"key": k, "sha256": sha256_hex(c)} for k, c, _ in todo]
        objects += [{"key": k} for k in sorted(chained - {k for k, _, _ in todo})]
        data = json.dumps({"format": 1, "writer": writer, "objects": objects}).encode()
        await store.put_bytes(
            record_key(writer), data, sha256=sha256_hex(data), content_type=CHAIN_CONTENT_TYPE
        )
    previous: tuple[int, str] | None = None
    sealed = 0
    for key, content, lines in todo:
        link = next_link(writer, sealed + 1, key, content, lines, previous)
        data = link.to_bytes()
        await store.put_bytes(
            link.key, data, sha256=sha256_hex(data), content_type=CHAIN_CONTENT_TYPE
        )
        await advance_head(store, data)
        previous = (link.seq, sha256_hex(data))
        sealed += 1
    return Sealed(
        writer if sealed else None,
        sealed,
        len(chained),
        skipped,
        refused,
        sorted(seals),
        recorded=not has_record,
    )
