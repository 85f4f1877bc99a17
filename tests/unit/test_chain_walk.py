"""Each writer's chain walked on a SQLite table (archiver.retrieval.chain_walk) reports
exactly what the walk in dicts reported: the same problems in the same order, heads,
walks and links, on chains with forks, gaps, altered and unreadable links, several
firsts, links after the head, a missing or wrong head, and loops of prev_seq.

The oracle is the code before the table (tests/unit/chain_oracle.py, main ``e051359``).
The new audit runs twice: walks in memory (``:memory:``, as ``audit_chains(store)``)
and on a scratch file with the links in a LinkTable (as ``verify`` runs it).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from archiver.manifest.chain import MAX_COUNT, Head, Link, sha256_hex
from archiver.retrieval.chain_audit import ChainAudit, audit_chains
from archiver.retrieval.link_table import LinkTable
from archiver.retrieval.problems import ProblemKind
from archiver.retrieval.scratch import open_scratch
from archiver.storage.layout import CHAIN_PREFIX, head_key, link_key
from archiver.storage.local import LocalStore
from tests.unit.chain_oracle import old_audit_chains


async def _put(store: LocalStore, key: str, body: bytes) -> None:
    await store.put_bytes(
        key, body, sha256=hashlib.sha256(body).hexdigest(), content_type="application/json"
    )


def _link(writer: str, seq: int, prev: tuple[int, str] | None, day: int = 1) -> Link:
    key = f"manifests/date=2026-12-{day:02d}/{seq:012d}-{writer}.jsonl"
    return Link(
        writer,
        seq,
        key,
        hashlib.sha256(key.encode()).hexdigest(),
        100 + seq,
        4,
        prev[0] if prev else None,
        prev[1] if prev else None,
    )


class _Writer:
    """One writer's chain as written: link bytes by seq, and what the head holds."""

    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.bodies: dict[int, bytes] = {}
        prev: tuple[int, str] | None = None
        for seq in range(1, count + 1):
            body = _link(name, seq, prev).to_bytes()
            self.bodies[seq] = body
            prev = (seq, sha256_hex(body))
        self.head: bytes | None = Head.of(self.bodies[count]).to_bytes() if count else None
        self.extra: dict[str, bytes] = {}  # other keys under the writer's folder

    def set(self, link: Link) -> None:
        self.bodies[link.seq] = link.to_bytes()

    def sha(self, seq: int) -> str:
        return sha256_hex(self.bodies[seq])

    async def write(self, store: LocalStore) -> None:
        for seq, body in self.bodies.items():
            await _put(store, link_key(self.name, seq), body)
        if self.head is not None:
            await _put(store, head_key(self.name), self.head)
        for key, body in self.extra.items():
            await _put(store, key, body)


def _mutate(rng: random.Random, w: _Writer) -> None:
    """One of the ways a chain is found wrong, at random."""
    seqs = sorted(w.bodies)
    top = max(seqs, default=0)
    pick = rng.choice(seqs) if seqs else 1
    what = rng.randrange(14)
    old = _parsed(w.bodies[pick]) if pick in w.bodies else None
    if what == 0 and seqs:  # a link removed (a gap)
        del w.bodies[pick]
    elif what == 1 and old is not None:  # a link altered: its bytes no longer those named
        w.set(Link(w.name, pick, old.manifest_key, old.manifest_sha256, 7, 1, *_prev(old)))
    elif what == 2 and seqs:  # a fork: a new link beside the chain, naming a real one
        seq = rng.choice([0, top + rng.randint(1, 3), pick])
        w.set(_link(w.name, seq, (pick, w.sha(pick)), day=3))
    elif what == 3 and old is not None:  # a second first link
        w.set(Link(w.name, pick, old.manifest_key, old.manifest_sha256, 9, 2, None, None))
    elif what == 4 and seqs:  # unreadable
        w.bodies[pick] = rng.choice([b"not json", b"{}", b'{"format": 1}'])
    elif what == 5 and old is not None:  # a link that says it is another
        other = rng.choice([(w.name, pick + 1), ("other-writer", pick)])
        said = Link(other[0], other[1], old.manifest_key, "ab" * 32, 1, 1, *_prev(old))
        w.bodies[pick] = said.to_bytes()
    elif what == 6 and old is not None:  # prev_seq forward: a loop
        target = rng.choice(seqs)
        sha = w.sha(target) if rng.random() < 0.7 else "cd" * 32
        w.set(Link(w.name, pick, old.manifest_key, old.manifest_sha256, 5, 5, target, sha))
    elif what == 7:  # no head
        w.head = None
    elif what == 8:  # the head names a link that is not there
        w.head = Head(w.name, top + rng.randint(1, 5), "ef" * 32).to_bytes()
    elif what == 9 and seqs:  # the head names a real link with other bytes
        w.head = Head(w.name, pick, "01" * 32).to_bytes()
    elif what == 10 and seqs:  # links written after the head
        w.head = Head.of(w.bodies[pick]).to_bytes()
    elif what == 11:  # an unreadable head, or one with a number no link can have
        w.head = rng.choice([b"garbage", Head(w.name, MAX_COUNT + 5, "02" * 32).to_bytes()])
    elif what == 12 and old is not None:  # two links name one manifest object
        twin = _parsed(w.bodies[rng.choice(seqs)])
        if twin is not None:
            key, sha = twin.manifest_key, twin.manifest_sha256
            w.set(Link(w.name, pick, key, sha, old.manifest_size, old.lines, *_prev(old)))
    elif what == 13:  # beside the links: a token, a short key of a seq, a stray file
        w.extra[f"{CHAIN_PREFIX}{w.name}/{pick:012d}.tsr"] = b"token"
        w.extra[f"{CHAIN_PREFIX}{w.name}/{pick}.json"] = b"short key"
        w.extra[f"{CHAIN_PREFIX}{w.name}/notes.txt"] = b"stray"


def _parsed(body: bytes) -> Link | None:
    try:
        return Link.from_bytes(body)
    except ValueError:
        return None


def _prev(link: Link) -> tuple[int | None, str | None]:
    return link.prev_seq, link.prev_sha256


def _view(audit: ChainAudit) -> dict[str, Any]:
    return {
        "writers": (audit.writers, sorted(audit.writer_ids)),
        "problems": [(p.kind, p.where, p.detail) for p in audit.problems],
        "heads": dict(audit.state.heads),
        "walks": {w: dict(walk) for w, walk in audit.state.walks.items()},
        "walk order": {w: list(walk) for w, walk in audit.state.walks.items()},
        "walk sizes": {w: len(walk) for w, walk in audit.state.walks.items()},
        "links": dict(sorted(audit.links.items())),
    }


async def _all_three(store: LocalStore, scratch: Path) -> list[dict[str, Any]]:
    old = _view(await old_audit_chains(store))
    old["walk order"] = {w: sorted(walk) for w, walk in old["walks"].items()}
    in_memory = _view(await audit_chains(store))
    with open_scratch(scratch, "verify") as db:
        on_file = await audit_chains(store, LinkTable(db), db)
        viewed = _view(on_file)
        for writer, walk in on_file.state.walks.items():
            for seq in (-1, 0, 10**6, MAX_COUNT + 1):
                assert walk.get(seq) == old["walks"][writer].get(seq)
                assert (seq in walk) == (seq in old["walks"][writer])
    return [old, in_memory, viewed]


@pytest.mark.parametrize("seed", range(60))
async def test_the_table_walk_reports_what_the_dict_walk_did(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = LocalStore(tmp_path / "archive")
    writers = [_Writer(f"w{n}", rng.randint(0, 12)) for n in range(rng.randint(1, 3))]
    for writer in writers:
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            _mutate(rng, writer)
        await writer.write(store)
    old, in_memory, on_file = await _all_three(store, tmp_path)
    assert in_memory == old
    assert on_file == old


async def test_a_long_chain_across_pages_with_a_fork_and_a_cut(tmp_path: Path) -> None:
    """More links than a page (1,000 rows) of each query, and both kinds of problem."""
    store = LocalStore(tmp_path / "archive")
    w = _Writer("long", 2300)
    w.set(_link("long", 2400, (1500, w.sha(1500)), day=2))  # after the head: unproven
    w.set(_link("long", 0, (1200, w.sha(1200)), day=2))  # beside the chain: broken
    del w.bodies[700]  # the walk stops at 701: below it, nothing vouched
    await w.write(store)
    old, in_memory, on_file = await _all_three(store, tmp_path)
    assert in_memory == old
    assert on_file == old
    walk = on_file["walks"]["long"]
    assert min(walk) == 701
    assert len(walk) == 2300 - 700
    kinds = [(kind, where) for kind, where, _ in on_file["problems"]]
    assert (ProblemKind.CHAIN_BROKEN, link_key("long", 700)) in kinds
    assert (ProblemKind.UNPROVEN, link_key("long", 2400)) in kinds
    assert (ProblemKind.CHAIN_BROKEN, link_key("long", 0)) in kinds


async def test_numbers_no_link_can_have_are_problems_not_a_crash(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive")
    w = _Writer("big", 3)
    key = "manifests/date=2026-12-01/x.jsonl"
    huge = Link("big", 4, key, "ab" * 32, MAX_COUNT + 1, 1, 3, w.sha(3))
    w.bodies[4] = huge.to_bytes()
    w.extra[f"{CHAIN_PREFIX}big/{MAX_COUNT + 7}.json"] = b"{}"
    await w.write(store)
    with open_scratch(tmp_path, "verify") as db:
        audit = await audit_chains(store, LinkTable(db), db)
        found = {(p.kind, p.where, p.detail) for p in audit.problems}
        assert (
            ProblemKind.CHAIN_BROKEN,
            link_key("big", 4),
            "unreadable link: manifest_size is larger than any link's",
        ) in found
        assert (
            ProblemKind.CHAIN_BROKEN,
            f"{CHAIN_PREFIX}big/{MAX_COUNT + 7}.json",
            "a link number no link can have",
        ) in found
        assert dict(audit.state.walks["big"]) == {n: w.sha(n) for n in (1, 2, 3)}
