"""The checked rollups' copies of their links on a SQLite table
(archiver.retrieval.rollup_copies): the same as the dicts they were.

The table against a dict of the same copies (across pages, a later copy
replacing an earlier one, lookups of numbers no row can have); the join with
the chain's listing against the dict walk; and the chain audit with copies on
a scratch file against the walk in dicts of tests/unit/chain_oracle.py with the
same copies in a dict: the same problems, walks and links, and the same links
read from the storage (a copy the listing proves is not read).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import archiver.retrieval.chain_audit as chain_audit
import tests.unit.chain_oracle as chain_oracle
from archiver.retrieval.chain_audit import audit_chains
from archiver.retrieval.chain_walk import ChainWalks
from archiver.retrieval.link_table import LinkTable
from archiver.retrieval.rollup_audit import RollupAudit
from archiver.retrieval.rollup_copies import RollupCopies
from archiver.retrieval.scratch import open_scratch
from archiver.storage.base import ObjectProof, StoredObject
from archiver.storage.layout import link_key, parse_chain_key
from archiver.storage.local import LocalStore
from tests.unit.chain_oracle import old_audit_chains
from tests.unit.test_chain_walk import _mutate, _view, _Writer


def _random_copies(rng: random.Random) -> dict[str, dict[int, bytes]]:
    copies: dict[str, dict[int, bytes]] = {}
    for writer in rng.sample(["a", "b", "c", "d"], rng.randint(0, 4)):
        for seq in rng.sample(range(2600), rng.randint(0, 2500)):
            copies.setdefault(writer, {})[seq] = rng.randbytes(rng.randint(0, 40))
    return copies


@pytest.mark.parametrize("seed", range(8))
def test_the_table_is_the_dict_it_replaces(seed: int) -> None:
    rng = random.Random(seed)
    expected: dict[str, dict[int, bytes]] = {}
    table = RollupCopies(sqlite3.connect(":memory:"))
    for _ in range(rng.randint(1, 4)):  # a rollup at a time; later copies replace earlier
        for writer, copies in _random_copies(rng).items():
            expected.setdefault(writer, {}).update(copies)
            table.add(writer, list(copies.items()))
    assert {w: dict(c) for w, c in table.items()} == expected
    assert list(table) == sorted(w for w, c in expected.items() if c)
    for writer, copies in expected.items():
        assert list(table[writer]) == sorted(copies)
        assert len(table[writer]) == len(copies)
        for seq in (-1, 0, 2599, 2**63, 2**64):
            assert table[writer].get(seq) == copies.get(seq)
    assert table.get("nobody") is None
    assert table.get("nobody", {}) == {}
    table.clear()
    assert dict(table) == {}


@pytest.mark.parametrize("seed", range(8))
def test_the_listed_copies_are_the_dict_walks(seed: int) -> None:
    """Each listed link with a copy, in seq order, across pages, while the walk takes
    links between rows (writes to chain_walk)."""
    rng = random.Random(seed)
    db = sqlite3.connect(":memory:")
    table = RollupCopies(db)
    copies = _random_copies(rng)
    for writer, by_seq in copies.items():
        table.add(writer, list(by_seq.items()))
    walks = ChainWalks(db)
    listed: dict[str, dict[int, tuple[int, str | None]]] = {}
    for writer in ["a", "b", "c", "d"]:
        for seq in rng.sample(range(2600), rng.randint(0, 2500)):
            size, etag = rng.randint(0, 40), rng.choice([None, "ab" * 16])
            listed.setdefault(writer, {})[seq] = (size, etag)
            walks.add_listed(writer, seq, size, etag)
    walks.listed_all()
    for writer in ["a", "b", "c", "d", "e"]:
        mine = listed.get(writer, {})
        theirs = copies.get(writer, {})
        expected = [(s, *mine[s], theirs[s]) for s in sorted(mine) if s in theirs]
        got = []
        for row in table.listed(writer):
            got.append(row)
            walks.take(writer, row[0], "taken")  # what the walk writes between rows
        assert got == expected


class _ETagStore(LocalStore):
    """A folder that lists each object's MD5 as its ETag (as S3 for a single part), and
    counts the chain links read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.links_read: list[str] = []

    async def list(self, prefix: str, *, start_after: str = "") -> AsyncIterator[StoredObject]:
        async for obj in super().list(prefix, start_after=start_after):
            md5 = hashlib.md5((self._root / obj.key).read_bytes(), usedforsecurity=False)
            yield dataclasses.replace(obj, proof=ObjectProof(etag=md5.hexdigest()))

    def read(self, key: str, *args: Any, **kwargs: Any) -> Any:
        parsed = parse_chain_key(key)
        if parsed is not None and parsed[1] is not None:
            self.links_read.append(key)
        return super().read(key, *args, **kwargs)


@pytest.mark.parametrize("seed", range(30))
async def test_the_walk_takes_the_copies_the_dict_walk_took(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    store = _ETagStore(tmp_path / "archive")
    writers = [_Writer(f"w{n}", rng.randint(0, 30)) for n in range(rng.randint(1, 3))]
    copies: dict[str, dict[int, bytes]] = {}
    for w in writers:
        for seq, body in w.bodies.items():  # copies as written: some then altered below
            if rng.random() < 0.7:
                copies.setdefault(w.name, {})[seq] = body
        for _ in range(rng.choice([0, 1, 2, 3])):
            _mutate(rng, w)
        for _ in range(rng.choice([0, 1, 2])):  # a copy other than the stored link
            copies.setdefault(w.name, {})[rng.randint(0, 35)] = rng.choice(
                [b"not json", w.bodies.get(rng.randint(0, 35), b"{}") + b" "]
            )
        await w.write(store)

    async def old_rollups(_store: object) -> RollupAudit:
        # The dicts it was (a copy: the walk clears them).
        return RollupAudit(links={w: dict(c) for w, c in copies.items()})  # type: ignore[arg-type]

    async def new_rollups(_store: object, db: sqlite3.Connection | None = None) -> RollupAudit:
        audit = RollupAudit(links=RollupCopies(db))
        for writer, by_seq in copies.items():
            audit.links.add(writer, list(by_seq.items()))
        return audit

    monkeypatch.setattr(chain_oracle, "audit_rollups", old_rollups)
    monkeypatch.setattr(chain_audit, "audit_rollups", new_rollups)
    old = _view(await old_audit_chains(store))
    old["walk order"] = {w: sorted(walk) for w, walk in old["walks"].items()}
    old_reads, store.links_read = sorted(store.links_read), []
    with open_scratch(tmp_path, "verify") as db:
        on_file = _view(await audit_chains(store, LinkTable(db), db))
    assert on_file == old
    assert sorted(store.links_read) == old_reads
    # A copy the listing proves is taken, any other link read (a short key of the same
    # seq, listed after the link, is what the listing says of it: left out here).
    for w in (w for w in writers if not w.extra):
        for seq, body in w.bodies.items():
            proven = copies.get(w.name, {}).get(seq) == body
            assert (link_key(w.name, seq) in old_reads) is not proven
