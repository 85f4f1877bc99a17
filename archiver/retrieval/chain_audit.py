"""``verify``'s view of the manifest chain: every link read, every manifest object accounted for.

For each writer under ``_archiver/chain/``: its links are read and walked
back from the newest, each one's ``prev_sha256`` checked against the bytes of
the link it names, down to the first link; the head must name a link of the
chain with that link's SHA-256. The result maps each chained manifest key to
its link, so that every manifest object read can be checked against it, and
every link whose manifest object was not found is reported (missing, or
hidden behind a delete marker in a versioned bucket).

A link a checked rollup holds is taken from the rollup when the listing proves
the stored link is that copy (:mod:`archiver.retrieval.rollup_audit`), and
read otherwise; either way the walk checks the same bytes.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import AsyncGenerator, Container, MutableMapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import date

from archiver.manifest.chain import MAX_COUNT, Head, Link, sha256_hex
from archiver.manifest.reader import Manifest, read_object, read_objects
from archiver.retrieval.chain_walk import ChainWalks
from archiver.retrieval.link_table import in_key_order
from archiver.retrieval.manifest_listing import ListedManifests
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.rollup_audit import RollupAudit, audit_rollups, listed_bytes
from archiver.storage.base import ObjectStore, VersionedStore
from archiver.storage.layout import (
    CHAIN_PREFIX,
    head_key,
    link_key,
    parse_chain_key,
    partition_date,
)
from archiver.witness.checkpoint import ChainState


@dataclass
class ChainAudit:
    """Every writer's chain, checked; what verify needs to check the manifest objects."""

    writers: int = 0
    # By manifest key; verify's on its scratch file (a LinkTable: compare links with ==).
    links: MutableMapping[str, Link] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    unchained: int = 0  # legacy manifest objects under no chain (archiver seal)
    state: ChainState = field(default_factory=ChainState)  # heads and walks, for witnesses
    writer_ids: set[str] = field(default_factory=set)  # every writer with a link or a head
    rollups: RollupAudit = field(default_factory=RollupAudit)  # checked, on the walk

    def read_manifests(
        self, store: ObjectStore, objects: ListedManifests
    ) -> AsyncGenerator[Manifest, None]:
        """The manifest objects listed, parsed: from checked rollups where the listing
        proves them, else read (see :mod:`archiver.retrieval.rollup_audit`)."""
        return self.rollups.read_manifests(store, objects, self.links)

    def check_manifest(self, manifest: Manifest) -> Problem | None:
        """The manifest object against its link; None if it matches (or is legacy, unchained)."""
        link = self.links.get(manifest.key)
        if link is None:
            if manifest.calls and all(call.legacy for call in manifest.calls):
                # Legacy lines are valid only where a seal recorded them: one that
                # appears later is planted history (or an archive never sealed).
                self.unchained += 1
                return Problem(
                    ProblemKind.OUT_OF_CHAIN,
                    manifest.key,
                    "a legacy-format manifest object (no proof fields) that no seal recorded: "
                    "planted, or an archive not yet sealed since upgrading (run archiver seal "
                    "once, see docs/upgrading.md)",
                )
            return Problem(
                ProblemKind.OUT_OF_CHAIN,
                manifest.key,
                "no chain link records this manifest object (written outside the archiver, "
                "or its writer crashed before linking it: run the archiver again)",
            )
        if (manifest.sha256, manifest.size) != (link.manifest_sha256, link.manifest_size):
            return Problem(
                ProblemKind.MANIFEST_ALTERED,
                manifest.key,
                f"{manifest.size} bytes with SHA-256 {manifest.sha256}; link {link.key} "
                f"records {link.manifest_size} bytes with SHA-256 {link.manifest_sha256}",
            )
        return None

    async def unseen(
        self, store: ObjectStore, seen: Container[str], first: date, last: date
    ) -> list[Problem]:
        """The chained manifest objects of partitions [first, last] that were not read, and
        the rollups that did not check out while the manifest objects were read."""
        problems = self.rollups.take_problems()
        for key, link in in_key_order(self.links):
            day = partition_date(key)
            if key in seen or day is None or not first <= day <= last:
                continue
            problems.append(await _gone(store, link))
        return problems


async def _gone(store: ObjectStore, link: Link) -> Problem:
    what = f"{link.lines} manifest line(s) recorded by {link.key} are not readable"
    if isinstance(store, VersionedStore):
        versions = await store.versions(link.manifest_key)
        kept = [v for v in versions if not v.delete_marker]
        if versions and versions[-1].delete_marker and kept:
            return Problem(
                ProblemKind.MANIFEST_HIDDEN,
                link.manifest_key,
                f"hidden by a delete marker; {what}; version {kept[-1].version_id} still "
                "holds it (remove the delete marker to restore it)",
            )
    return Problem(ProblemKind.MANIFEST_MISSING, link.manifest_key, f"no such object; {what}")


async def audit_chains(
    store: ObjectStore,
    links: MutableMapping[str, Link] | None = None,
    db: sqlite3.Connection | None = None,
) -> ChainAudit:
    """Read and check every writer's chain (one listing, one read per link and head, but
    for the links a checked rollup holds and the listing proves). ``links``: where the
    checked links go (verify: a :class:`~archiver.retrieval.link_table.LinkTable`).
    ``db``: where each writer is walked (:mod:`archiver.retrieval.chain_walk`; verify:
    its scratch file, open as long as ``state.walks`` is read); None: in memory."""
    db = db if db is not None else sqlite3.connect(":memory:")
    # One connection: the walk joins the listing with the rollups' copies.
    audit = ChainAudit(links={} if links is None else links, rollups=await audit_rollups(store, db))
    walks = ChainWalks(db)
    writers: set[str] = set()
    heads: set[str] = set()
    async for obj in store.list(CHAIN_PREFIX):
        parsed = parse_chain_key(obj.key)
        if parsed is None:
            continue  # timestamps and anything else beside the links
        writer, seq = parsed
        writer = sys.intern(writer)
        writers.add(writer)
        if seq is None:
            heads.add(writer)
        elif seq > MAX_COUNT:
            audit.problems.append(
                Problem(ProblemKind.CHAIN_BROKEN, obj.key, "a link number no link can have")
            )
        else:
            walks.add_listed(writer, seq, obj.size, obj.proof.etag)
    walks.listed_all()
    audit.writer_ids = writers
    audit.writers = len(writers)
    for writer in sorted(writers):
        await audit_writer(store, audit, walks, writer, writer in heads)
    audit.rollups.on_walk(audit.state.walks)
    # Those of the manifests' reading come with unseen().
    audit.problems += audit.rollups.take_problems()
    return audit


async def audit_writer(
    store: ObjectStore, audit: ChainAudit, walks: ChainWalks, writer: str, has_head: bool
) -> None:
    """Read and check ``writer``'s links listed on ``walks`` (16 reads at a time, each
    link a row), walk them back from its head, and report what is wrong."""

    def broken(where: str, detail: str) -> None:
        audit.problems.append(Problem(ProblemKind.CHAIN_BROKEN, where, detail))

    # Each link parsed as it arrives (16 reads at a time) and stored: its bytes are not
    # kept, only the link and its SHA-256, or what is wrong with it.
    def take(seq: int, data: bytes | None) -> None:
        if data is None:
            walks.take(writer, seq, "the link vanished while being read")
            return
        try:
            walks.take(writer, seq, (Link.from_bytes(data), sha256_hex(data)))
        except ValueError as exc:
            walks.take(writer, seq, f"unreadable link: {exc}")

    # The links a checked rollup holds a copy of, a page at a time from the table.
    for seq, size, etag, copy in audit.rollups.links.listed(writer):
        if listed_bytes(size, etag, copy):
            take(seq, copy)
    keys = (link_key(writer, seq) for seq in walks.unread(writer))
    async with aclosing(read_objects(store, keys, concurrency=16)) as reads:
        async for key, content in reads:
            parts = parse_chain_key(key)  # a key link_key made: (writer, seq)
            if parts is not None and parts[1] is not None:
                take(parts[1], content)
    for seq, read, _sha in walks.read(writer, "the link vanished while being read"):
        if isinstance(read, str):
            broken(link_key(writer, seq), read)
        elif (read.writer, read.seq) != (writer, seq):
            broken(link_key(writer, seq), f"the link says it is {read.key}")
        else:
            audit.links[read.manifest_key] = read
    # Each link must name its predecessor's exact bytes, back to the first link.
    for seq, prev_seq, prev_sha, found, found_sha in walks.predecessors(writer):
        if found is None:
            broken(
                link_key(writer, prev_seq),
                f"missing: link {link_key(writer, seq)} follows it, so the chain is cut "
                "(a link or manifest object was removed)",
            )
        elif found_sha != prev_sha:
            broken(
                link_key(writer, found),
                f"altered: its SHA-256 is {found_sha}, "
                f"link {link_key(writer, seq)} records {prev_sha}",
            )
    firsts = walks.firsts(writer)
    if len(firsts) > 1:
        broken(f"{CHAIN_PREFIX}{writer}/", f"{len(firsts)} links start a chain: {firsts}")
    if not has_head:
        if walks.any_good(writer):
            broken(head_key(writer), "the chain head is missing")
        return
    try:
        head = Head.from_bytes(await read_object(store, head_key(writer)))
    except (KeyError, ValueError) as exc:
        broken(head_key(writer), f"unreadable head: {exc}")
        return
    named = walks.good(writer, head.seq)
    if named is None:
        broken(head_key(writer), f"the head names link {head.seq}, which is missing")
        return
    if named[1] != head.link_sha256:
        broken(
            named[0].key,
            f"altered: its SHA-256 is {named[1]}, the head records {head.link_sha256}",
        )
    _off_the_walk(audit, walks, writer, head)


def _off_the_walk(audit: ChainAudit, walks: ChainWalks, writer: str, head: Head) -> None:
    """Report every link the walk back from the head does not reach.

    Each link checks its predecessor, but only the head vouches for the newest:
    a link that no walk from the head reaches (a fork, or one added beside the
    chain) proves nothing. One past the head is what a run that stopped between
    writing a link and moving its head leaves; its next run moves the head over it.
    """
    audit.state.heads[writer] = (head.seq, head.link_sha256)
    # A link is on the walk only if its successor vouches for its bytes (checked above);
    # the head's own link only if it is the one the head names.
    audit.state.walks[writer] = walks.walk_back(writer, head)
    for link in walks.off_walk(writer):
        if link.seq > head.seq:
            problem = Problem(
                ProblemKind.UNPROVEN,
                link.key,
                f"written after the head (link {head.seq}), so no head vouches for it: a run "
                "stopped before moving its head (the next run moves it), or it was added",
            )
        else:
            problem = Problem(
                ProblemKind.CHAIN_BROKEN,
                link.key,
                f"not on the chain walked back from the head (link {head.seq}): "
                "a fork, or a link added beside the chain",
            )
            # Its manifest object is then under no valid link.
            if audit.links.get(link.manifest_key) == link:
                del audit.links[link.manifest_key]
        audit.problems.append(problem)
