"""Reading tombstones back, each object proven against its chain link.

``verify`` counts a gone recording as DISPOSED only when a tombstone naming
its object key and SHA-256 sits in an object its chain link records (same
SHA-256 and size); ``get`` and ``reconcile`` say "disposed" on the same proof.
A tombstone object edited, removed or added beside the chain is a problem and
its tombstones are not applied: the recordings they name are MISSING again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from archiver.manifest.chain import Link
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import read_object, read_objects
from archiver.manifest.tombstone import Tombstone, parse_tombstone_key, parse_tombstones
from archiver.retrieval.problems import Problem, ProblemKind, records_against_link
from archiver.storage.base import ObjectStore
from archiver.storage.layout import TOMBSTONE_PREFIX, link_key

# A recording as a tombstone names it: (object key as in the manifest, SHA-256).
Named = tuple[str, str]


@dataclass
class Tombstones:
    """The tombstones found (proven ones only, when a chain was given), and problems."""

    stones: dict[Named, Tombstone] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    objects: int = 0

    def of(self, call: ManifestEntry) -> Tombstone | None:
        """The tombstone of ``call``'s recording, if any."""
        return self.stones.get((call.object_key, call.sha256))

    def of_identity(self, provider: str, cdr_id: str) -> Tombstone | None:
        """A tombstone of the call (provider, cdr id), if any."""
        for stone in self.stones.values():
            if stone.identity == (provider, cdr_id):
                return stone
        return None


def _against_link(key: str, content: bytes, link: Link | None) -> Problem | None:
    return records_against_link(key, content, link, "tombstone", "tombstones")


async def read_tombstones(
    store: ObjectStore, links: Mapping[str, Link] | None = None, *, prove: bool = True
) -> Tombstones:
    """Every tombstone; with ``links`` (verify's checked chain) each object is checked
    against its link; without, each object's own link is read and checked (``prove``),
    or nothing is checked (``prove=False``: dispose's "already done" only)."""
    found = Tombstones()
    keys = [obj.key async for obj in store.list(TOMBSTONE_PREFIX)]
    seen: set[str] = set()
    async for key, content in read_objects(store, keys):
        if content is None:
            continue
        seen.add(key)
        found.objects += 1
        if links is not None or prove:
            link = links.get(key) if links is not None else await _own_link(store, key)
            problem = _against_link(key, content, link)
            if problem is not None:
                found.problems.append(problem)
                continue
        stones, bad = parse_tombstones(key, content)
        for stone in stones:
            found.stones.setdefault((stone.object_key, stone.sha256), stone)
        found.problems += [Problem(ProblemKind.BAD_LINE, b, "not a tombstone") for b in bad]
    for key, link in sorted((links or {}).items()):
        if key.startswith(TOMBSTONE_PREFIX) and key not in seen:
            found.problems.append(
                Problem(
                    ProblemKind.MANIFEST_MISSING,
                    key,
                    f"no such object; {link.lines} tombstone(s) recorded by {link.key} are "
                    "not readable: the recordings they name count as MISSING",
                )
            )
    return found


async def _own_link(store: ObjectStore, key: str) -> Link | None:
    parsed = parse_tombstone_key(key)
    if parsed is None:
        return None
    try:
        link = Link.from_bytes(await read_object(store, link_key(*parsed)))
    except (KeyError, ValueError):
        return None
    return link if link.manifest_key == key else None
