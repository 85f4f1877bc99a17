"""The chain audit's walk as it was before its scratch table (main ``e051359``): each
writer's listing, links and walk in Python dicts. Kept only as the oracle of
tests/unit/test_chain_walk.py (the rollup copies' proof by listing included)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import aclosing

from archiver.manifest.chain import Head, Link, sha256_hex
from archiver.manifest.reader import read_object, read_objects
from archiver.retrieval.chain_audit import ChainAudit
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.rollup_audit import audit_rollups, listed_as
from archiver.storage.base import ObjectStore, StoredObject
from archiver.storage.layout import CHAIN_PREFIX, head_key, link_key, parse_chain_key


def _links_to_read(
    listed: Iterable[tuple[int, StoredObject]], copies: dict[int, bytes]
) -> tuple[dict[int, bytes], list[int]]:
    proven: dict[int, bytes] = {}
    read: list[int] = []
    for seq, obj in listed:
        copy = copies.get(seq)
        if copy is not None and listed_as(obj, copy):
            proven[seq] = copy
        else:
            read.append(seq)
    return proven, read


async def old_audit_chains(store: ObjectStore) -> ChainAudit:
    """The whole chain audit as it was, the walk of each writer in dicts."""
    audit = ChainAudit(links={}, rollups=await audit_rollups(store))
    by_writer: dict[str, dict[int, StoredObject]] = {}
    heads: set[str] = set()
    async for obj in store.list(CHAIN_PREFIX):
        parsed = parse_chain_key(obj.key)
        if parsed is None:
            continue  # timestamps and anything else beside the links
        writer, seq = parsed
        if seq is None:
            heads.add(writer)
        else:
            by_writer.setdefault(writer, {})[seq] = obj
    audit.writer_ids = by_writer.keys() | heads
    audit.writers = len(audit.writer_ids)
    for writer in sorted(by_writer.keys() | heads):
        # Each writer's listing is let go once its chain is walked.
        await _audit_writer(store, audit, writer, by_writer.pop(writer, {}), writer in heads)
    audit.rollups.on_walk(audit.state.walks)
    # Those of the manifests' reading come with unseen().
    audit.problems += audit.rollups.take_problems()
    return audit


async def _audit_writer(
    store: ObjectStore,
    audit: ChainAudit,
    writer: str,
    listed: dict[int, StoredObject],
    has_head: bool,
) -> None:
    def broken(where: str, detail: str) -> None:
        audit.problems.append(Problem(ProblemKind.CHAIN_BROKEN, where, detail))

    seqs = set(listed)
    proven, unread = _links_to_read(listed.items(), audit.rollups.links.get(writer, {}))
    # Each link parsed as it arrives (16 reads at a time): its bytes are not kept, only the
    # link and its SHA-256, or what is wrong with it.
    parsed: dict[int, tuple[Link, str] | str] = {}

    def take(seq: int, data: bytes | None) -> None:
        if data is None:
            parsed[seq] = "the link vanished while being read"
            return
        try:
            parsed[seq] = (Link.from_bytes(data), sha256_hex(data))
        except ValueError as exc:
            parsed[seq] = f"unreadable link: {exc}"

    for seq, copy in proven.items():
        take(seq, copy)
    keys = (link_key(writer, seq) for seq in sorted(unread))
    async with aclosing(read_objects(store, keys, concurrency=16)) as reads:
        async for key, content in reads:
            parts = parse_chain_key(key)  # a key link_key made: (writer, seq)
            if parts is not None and parts[1] is not None:
                take(parts[1], content)
    links: dict[int, tuple[Link, str]] = {}
    for seq in sorted(seqs):
        got = parsed.pop(seq, "the link vanished while being read")
        if isinstance(got, str):
            broken(link_key(writer, seq), got)
            continue
        read, sha = got
        if (read.writer, read.seq) != (writer, seq):
            broken(link_key(writer, seq), f"the link says it is {read.key}")
            continue
        links[seq] = (read, sha)
        audit.links[read.manifest_key] = read
    # Each link must name its predecessor's exact bytes, back to the first link.
    for _seq, (link, _) in sorted(links.items()):
        if link.prev_seq is None:
            continue
        previous = links.get(link.prev_seq)
        if previous is None:
            broken(
                link_key(writer, link.prev_seq),
                f"missing: link {link.key} follows it, so the chain is cut "
                "(a link or manifest object was removed)",
            )
        elif previous[1] != link.prev_sha256:
            broken(
                previous[0].key,
                f"altered: its SHA-256 is {previous[1]}, "
                f"link {link.key} records {link.prev_sha256}",
            )
    firsts = [seq for seq, (link, _) in links.items() if link.prev_seq is None]
    if len(firsts) > 1:
        broken(f"{CHAIN_PREFIX}{writer}/", f"{len(firsts)} links start a chain: {firsts}")
    if not has_head:
        if links:
            broken(head_key(writer), "the chain head is missing")
        return
    try:
        head = Head.from_bytes(await read_object(store, head_key(writer)))
    except (KeyError, ValueError) as exc:
        broken(head_key(writer), f"unreadable head: {exc}")
        return
    named = links.get(head.seq)
    if named is None:
        broken(head_key(writer), f"the head names link {head.seq}, which is missing")
        return
    if named[1] != head.link_sha256:
        broken(
            named[0].key,
            f"altered: its SHA-256 is {named[1]}, the head records {head.link_sha256}",
        )
    _off_the_walk(audit, writer, links, head)


def _vouched(
    walk: dict[int, str], links: dict[int, tuple[Link, str]], head: Head
) -> dict[int, str]:
    vouched: dict[int, str] = {}
    expected: str | None = head.link_sha256
    for seq in sorted(walk, reverse=True):
        if walk[seq] != expected:
            break
        vouched[seq] = walk[seq]
        expected = links[seq][0].prev_sha256
    return vouched


def _off_the_walk(
    audit: ChainAudit, writer: str, links: dict[int, tuple[Link, str]], head: Head
) -> None:
    """Report every link the walk back from the head does not reach.

    Each link checks its predecessor, but only the head vouches for the newest:
    a link that no walk from the head reaches (a fork, or one added beside the
    chain) proves nothing. One past the head is what a run that stopped between
    writing a link and moving its head leaves; its next run moves the head over it.
    """
    on_walk: set[int] = set()
    seq: int | None = head.seq
    walk: dict[int, str] = {}
    while seq is not None and seq in links and seq not in on_walk:
        on_walk.add(seq)
        walk[seq] = links[seq][1]
        seq = links[seq][0].prev_seq
    audit.state.heads[writer] = (head.seq, head.link_sha256)
    # A link is on the walk only if its successor vouches for its bytes (checked above);
    # the head's own link only if it is the one the head names.
    audit.state.walks[writer] = _vouched(walk, links, head)
    for seq, (link, _) in sorted(links.items()):
        if seq in on_walk:
            continue
        if seq > head.seq:
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
