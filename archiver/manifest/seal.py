"""``archiver seal``: bring manifest objects written before the chain under one.

Every manifest object that no link records and whose lines are all legacy
(written before proof was recorded) gets a link, in key order, in a new chain
of its own (writer ``seal-<random>``); the head moves after each link, so a
seal stopped half-way leaves a valid, shorter chain and running it again seals
the rest. No manifest object is rewritten: the links only record their
SHA-256. A manifest object with proof lines but no link is not sealed: its
writer links it when it runs again, and ``verify`` reports it until then.

An archive is sealed once: the seal's chain is the record of the legacy objects
it holds. Once a ``seal-*`` chain exists, no archiver writes legacy lines any
more, so a legacy object that appears later is planted history: a later seal
refuses it (``verify`` reports it OUT-OF-CHAIN) instead of vouching for it.
The seal's writer, like any other, counts only once registered with a witness
key (``archiver witness register``).
"""

from __future__ import annotations

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


SEAL_PREFIX = "seal-"


async def chained_manifests(store: ObjectStore, seals: set[str] | None = None) -> set[str]:
    """The manifest keys some link records (one listing, one read per link); the
    seal writers found are added to ``seals``."""
    keys: set[str] = set()
    async for obj in store.list(CHAIN_PREFIX):
        parsed = parse_chain_key(obj.key)
        if parsed is None or parsed[1] is None:
            continue
        if seals is not None and parsed[0].startswith(SEAL_PREFIX):
            seals.add(parsed[0])
        try:
            keys.add(Link.from_bytes(await read_object(store, obj.key)).manifest_key)
        except (KeyError, ValueError):
            continue  # verify reports a broken link; sealing does not repair chains
    return keys


async def seal(store: ObjectStore) -> Sealed:
    """Link every unchained legacy manifest object; see the module docstring."""
    seals: set[str] = set()
    chained = await chained_manifests(store, seals)
    candidates = sorted(
        [
            obj.key
            async for obj in store.list(MANIFEST_PREFIX)
            if partition_date(obj.key) is not None and obj.key not in chained
        ]
    )
    writer = f"{SEAL_PREFIX}{secrets.token_hex(6)}"
    previous: tuple[int, str] | None = None
    skipped: list[str] = []
    refused: list[str] = []
    sealed = 0
    for key in candidates:
        try:
            content = await read_object(store, key)
        except KeyError:
            continue
        manifest = parse_manifest(key, content)
        if any(not call.legacy for call in manifest.calls):
            skipped.append(key)
            continue
        if seals:
            refused.append(key)
            continue
        lines = len(manifest.calls) + len(manifest.bad_lines)
        link = next_link(writer, sealed + 1, key, content, lines, previous)
        data = link.to_bytes()
        await store.put_bytes(
            link.key, data, sha256=sha256_hex(data), content_type=CHAIN_CONTENT_TYPE
        )
        await advance_head(store, data)
        previous = (link.seq, sha256_hex(data))
        sealed += 1
    return Sealed(writer if sealed else None, sealed, len(chained), skipped, refused, sorted(seals))
