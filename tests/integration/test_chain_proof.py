"""The read side's proof of a manifest object (archiver/retrieval/proof.py), on a real local
archive of six batches (six links), altered from outside as an insider would.

Each refusal names what is wrong; links proven once are used again only where
a link proven in the new walk records their very SHA-256, so kept links cost
no read and prove nothing a rewritten chain does not.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.manifest.chain import Head, Link, next_link, sha256_hex
from archiver.manifest.seal import seal
from archiver.retrieval import proof as proof_module
from archiver.retrieval import proven_links
from archiver.retrieval.errors import IntegrityError, IntegrityKind
from archiver.retrieval.proof import ChainProver, ProvenLink
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from archiver.storage.layout import head_key, link_key
from tests.support.pipeline import backfill, make_settings


class Counting:
    """The real store, counting the reads of chain links and heads by key."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.reads: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def read(self, key: str, *args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        self.reads[key] += 1
        return self._store.read(key, *args, **kwargs)


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    root = tmp_path_factory.mktemp("six-links")
    sim = Simulator(SimConfig(seed=20, calls=6, recording_fraction=1.0, max_size=40_000))
    storage = StorageSettings(url=str(root / "archive"))

    async def build() -> None:
        async with sim.serve() as base:
            state = str(root / "state.sqlite3")
            await backfill(make_settings(sim, base, storage, state, manifest_batch=1), sim)

    asyncio.run(build())
    return root / "archive"


@pytest.fixture
def root(_template: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(_template, tmp_path / "archive")
    return tmp_path / "archive"


def _chain(root: Path) -> tuple[str, list[Link]]:
    (folder,) = (root / "_archiver/chain").iterdir()
    links = [Link.from_bytes(p.read_bytes()) for p in sorted(folder.glob("0*.json"))]
    return folder.name, links


def _write(root: Path, key: str, data: bytes) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.write_bytes(data)


async def _prove(store: Any, root: Path, key: str, **kw: Any) -> Link:
    return await ChainProver(store, **kw).prove(key, (root / key).read_bytes())


async def test_every_manifest_object_is_proven_and_kept_links_cost_no_read(root):
    writer, links = _chain(root)
    assert len(links) >= 4
    async with open_store(StorageSettings(url=str(root))) as store:
        counting = Counting(store)
        first = ChainProver(counting)
        oldest = links[0].manifest_key
        assert (await first.prove(oldest, (root / oldest).read_bytes())).seq == links[0].seq
        walked = counting.reads[link_key(writer, links[-1].seq)]
        assert walked == 1  # every link between the head and the oldest, once
        # A second prover given the first's links reads the head and the link itself.
        counting.reads.clear()
        again = ChainProver(counting, first.added())
        await again.prove(oldest, (root / oldest).read_bytes())
        assert sum(counting.reads.values()) == 2, counting.reads
        for link in links:
            await again.prove(link.manifest_key, (root / link.manifest_key).read_bytes())


async def test_a_planted_object_a_link_beside_the_chain_and_an_edit_are_refused(root):
    writer, links = _chain(root)
    victim = links[1]
    content = (root / victim.manifest_key).read_bytes()
    async with open_store(StorageSettings(url=str(root))) as store:
        # An edited line: the object is no longer the one its link records.
        row = json.loads(content.splitlines()[0])
        row["sha256"] = "0" * 64
        edited = (json.dumps(row) + "\n").encode()
        with pytest.raises(IntegrityError, match="altered") as caught:
            await ChainProver(store).prove(victim.manifest_key, edited)
        assert caught.value.kind is IntegrityKind.CORRUPT
        # A planted object named like one of the writer's, with no link.
        planted = victim.manifest_key.replace(f"{victim.seq:012d}-", "000000000099-")
        with pytest.raises(IntegrityError, match="its link .* is missing") as caught:
            await ChainProver(store).prove(planted, content)
        assert caught.value.kind is IntegrityKind.OUT_OF_CHAIN
        # A link planted beside the chain, past the head (the head not moved).
        beside = next_link(writer, 99, planted, content, 1, (links[-1].seq, "f" * 64))
        _write(root, beside.key, beside.to_bytes())
        _write(root, planted, content)
        with pytest.raises(IntegrityError, match="past its chain's head") as caught:
            await ChainProver(store).prove(planted, content)
        assert caught.value.kind is IntegrityKind.CUT
        # The head moved onto it: its link names a predecessor the chain does not hold.
        _write(root, head_key(writer), Head.of(beside.to_bytes()).to_bytes())
        with pytest.raises(IntegrityError, match="altered|not on the chain"):
            await ChainProver(store).prove(victim.manifest_key, content)


async def test_a_kept_link_that_no_longer_matches_is_walked_again(root, tmp_path):
    writer, links = _chain(root)
    index = tmp_path / "index" / "index.sqlite3"
    async with open_store(StorageSettings(url=str(root))) as store:
        first = ChainProver(store)
        oldest = links[0].manifest_key
        await first.prove(oldest, (root / oldest).read_bytes())
        await proven_links.save(index, first.added())
        kept = await proven_links.load(index)
        assert kept == first.added()
        # Kept links that do not hash like the chain's are never taken as proof.
        forged = {
            key: ProvenLink("0" * 64, value.prev_seq, value.prev_sha256)
            for key, value in kept.items()
        }
        counting = Counting(store)
        await ChainProver(counting, forged).prove(oldest, (root / oldest).read_bytes())
        assert counting.reads[link_key(writer, links[-1].seq)] == 1  # read again
        # The head moved back over the newest link (a truncation): refused at once.
        newest = links[-1]
        previous = (root / link_key(writer, links[-2].seq)).read_bytes()
        _write(root, head_key(writer), Head.of(previous).to_bytes())
        with pytest.raises(IntegrityError, match="past its chain's head"):
            await ChainProver(store, kept).prove(
                newest.manifest_key, (root / newest.manifest_key).read_bytes()
            )
        assert sha256_hex(previous)  # the previous link itself stays proven
        await ChainProver(store, kept).prove(
            links[-2].manifest_key, (root / links[-2].manifest_key).read_bytes()
        )


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[proven_links.KeptLinks]:
    """The links a prover keeps, on an index file of the test's own (closed at the end)."""
    links = proven_links.KeptLinks(tmp_path / "index.sqlite3")
    yield links
    links.close()


async def test_a_prover_that_keeps_its_links_holds_none_and_reads_each_once(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: proven_links.KeptLinks
) -> None:
    # The console's prover: what it proves goes to the index file (2 links at a time
    # here), not into a dict held for months; found there again, as get's kept links are.
    monkeypatch.setattr(proof_module, "KEEP_EVERY", 2)
    writer, links = _chain(root)
    index = tmp_path / "index.sqlite3"
    async with open_store(StorageSettings(url=str(root))) as store:
        counting = Counting(store)
        prover = ChainProver(counting, kept, keep=kept.keep)
        oldest = links[0].manifest_key
        assert (await prover.prove(oldest, (root / oldest).read_bytes())).seq == links[0].seq
        assert prover.added() == {}, "nothing held once proven"
        on_file = await proven_links.load(index)
        # Every link the walk stepped through (the proven one is read by the proof itself).
        assert sorted(on_file) == [(writer, link.seq) for link in links[1:]]
        assert max(counting.reads.values()) == 1  # every link read once
        counting.reads.clear()
        for link in links:  # each proven again from the file: the head and the link read
            await prover.prove(link.manifest_key, (root / link.manifest_key).read_bytes())
            assert sum(counting.reads.values()) == 2, counting.reads
            counting.reads.clear()
        # A row of the file altered (a forged SHA-256): not taken, the link read again.
        middle = (writer, links[len(links) // 2].seq)
        row = on_file[middle]
        assert await kept.keep({middle: ProvenLink("0" * 64, row.prev_seq, row.prev_sha256)})
        await prover.prove(oldest, (root / oldest).read_bytes())
        assert counting.reads[link_key(writer, middle[1])] == 1


async def test_links_the_file_refuses_are_held_and_handed_over_later(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: proven_links.KeptLinks
) -> None:
    # The index file busy (the console's indexing holds its write lock): the proof still
    # answers, its links are held, not lost, and go to the file with the next proof.
    monkeypatch.setattr(proven_links, "KEEP_BUSY_MS", 50)
    writer, links = _chain(root)
    index = tmp_path / "index.sqlite3"
    other = sqlite3.connect(index, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.executescript(proven_links.SCHEMA)
    async with open_store(StorageSettings(url=str(root))) as store:
        prover = ChainProver(store, kept, keep=kept.keep)
        other.execute("BEGIN IMMEDIATE")
        oldest = links[0].manifest_key
        await prover.prove(oldest, (root / oldest).read_bytes())
        assert len(prover.added()) == len(links) - 1, "held while the file is busy"
        assert other.execute("SELECT count(*) FROM proven_links").fetchone() == (0,)
        other.execute("ROLLBACK")
        newest = links[-1].manifest_key
        await prover.prove(newest, (root / newest).read_bytes())
        assert prover.added() == {}
        on_file = await proven_links.load(index)
        assert sorted(on_file) == [(writer, link.seq) for link in links[1:]]
    other.close()


async def test_a_legacy_object_is_proven_by_its_seal_even_one_sealed_later(root):
    _, links = _chain(root)
    row = json.loads((root / links[0].manifest_key).read_text().splitlines()[0])
    for proof in ("etag", "version_id", "checksum_sha256", "checksum_type"):
        row.pop(proof, None)
    legacy = "manifests/date=2021-02-17/run-legacy-1.jsonl"
    content = (json.dumps(row) + "\n").encode()
    _write(root, legacy, content)
    async with open_store(StorageSettings(url=str(root))) as store:
        prover = ChainProver(store)  # as the console keeps one for its life
        with pytest.raises(IntegrityError, match="no link records it") as caught:
            await prover.prove(legacy, content)
        assert caught.value.kind is IntegrityKind.OUT_OF_CHAIN
        assert (await seal(store)).sealed == 1
        link = await prover.prove(legacy, content)
        assert link.writer.startswith("seal-")
