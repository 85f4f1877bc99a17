"""verify's timestamp check in bounded memory (``archiver.retrieval.stamp_audit``): a
writer's links are checked a chunk at a time, the listed tokens kept on a table, a
rolled-up link's token taken from its rollup when the listing proves the stored token
is that copy. The findings do not depend on the chunk's size; on S3 (an MD5 ETag) a
rolled-up token is not read, a token swapped for another is read and caught; on a local
folder (no ETag) every token is read."""

from __future__ import annotations

from typing import Any

import pytest

from archiver.retrieval import stamp_audit
from archiver.retrieval.chain_audit import audit_chains
from archiver.retrieval.problems import ProblemKind
from archiver.retrieval.stamp_audit import StampReport, audit_stamps
from archiver.storage import open_store
from archiver.storage.layout import stamp_key
from archiver.timestamping import load_anchors
from tests.adversary.conftest import Target
from tests.adversary.insider import insider
from tests.support.counting import Counting


def _found(report: StampReport) -> tuple[Any, ...]:
    problems = [(p.kind, p.where, p.detail) for p in report.problems]
    writers = [
        (w.writer, w.links, w.unstamped_before, w.checked, w.last_key) for w in report.writers
    ]
    return problems, writers, report.present


async def _audit(target: Target, pki: Any, chunk: int, monkeypatch: Any) -> tuple[Any, Any, Any]:
    """The stamp audit of ``target`` with chunks of ``chunk`` links: (findings, the tokens
    read one by one, the seqs its rollups cover by writer)."""
    monkeypatch.setattr(stamp_audit, "CHUNK", chunk)
    async with open_store(target.storage) as store:
        counting = Counting(store)
        chains = await audit_chains(counting)
        covered = {
            w: {s for r in rs for s in range(r.record.first_seq, r.record.last_seq + 1)}
            for w, rs in chains.rollups.rollups.items()
        }
        counting.reads.clear()
        report = await audit_stamps(counting, chains, load_anchors(pki.ca_cert), {})
        tokens_read = {k for k in counting.reads if k.endswith(".tsr")}
    return _found(report), tokens_read, covered


@pytest.mark.parametrize("stamped", ["local", "plain"], indirect=True)
async def test_rolled_up_tokens_are_checked_alike_in_chunks_of_any_size(
    stamped: Target, seaweed, pki, monkeypatch
):
    target = stamped
    rolled = await target.cli("rollup")
    assert rolled.code == 0, rolled.out + rolled.err
    found, read, covered = await _audit(target, pki, 2048, monkeypatch)
    problems, writers, present = found
    assert problems == []
    ((writer, links, before, checked, _),) = writers
    assert links >= 3
    assert (before, checked, present) == (0, links, links)  # every link stamped, all valid
    every = {stamp_key(writer, seq) for seq in range(1, links + 1)}
    assert covered[writer], "the rollup covers links"
    if target.kind == "local":
        assert read == every  # no ETag: each token read
    else:
        assert read == {
            stamp_key(writer, s) for s in range(1, links + 1) if s not in covered[writer]
        }
    for chunk in (1, 2):
        assert await _audit(target, pki, chunk, monkeypatch) == (found, read, covered)


@pytest.mark.parametrize("stamped", ["local", "plain"], indirect=True)
async def test_missing_tokens_are_found_alike_across_chunks(
    stamped: Target, seaweed, pki, monkeypatch
):
    """The first link's token removed (the chain looks stamped late) and a later one's
    (UNPROVEN): the same findings with chunks of 1, 2 and 2,048 links."""
    target = stamped
    assert (await target.cli("rollup")).code == 0
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        head = await ins.head(writer)
        later = head.seq  # after link 2, the first stamped one left
        await ins.delete(stamp_key(writer, 1))
        await ins.delete(stamp_key(writer, later))
    results = [(await _audit(target, pki, c, monkeypatch))[0] for c in (1, 2, 2048)]
    assert results[0] == results[1] == results[2]
    problems, writers, _ = results[0]
    ((_, links, before, checked, _),) = writers
    assert (before, checked) == (1, links - 2)
    ((kind, where, detail),) = problems
    assert (kind, where) == (ProblemKind.UNPROVEN, ins.store.full_key(stamp_key(writer, later)))
    assert f"link {later} of writer {writer} has no timestamp token although link 2" in detail
    check = await target.verify()
    assert check.code == 5, check.out + check.err


@pytest.mark.parametrize("stamped", ["plain"], indirect=True)
async def test_a_rolled_up_token_swapped_for_another_is_read_and_caught(
    stamped: Target, seaweed, pki, monkeypatch
):
    """The listing no longer matches the rollup's copy: the stored token is read, and it
    stamps other bytes."""
    target = stamped
    assert (await target.cli("rollup")).code == 0
    _, _, covered = await _audit(target, pki, 2, monkeypatch)
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        seq = min(covered[writer])
        other = await ins.get(stamp_key(writer, seq + 1))
        await ins.put(stamp_key(writer, seq), other)
    found, read, _ = await _audit(target, pki, 2, monkeypatch)
    assert stamp_key(writer, seq) in read
    problems = found[0]
    assert [(k, w) for k, w, _ in problems] == [
        (ProblemKind.TIMESTAMP, ins.store.full_key(stamp_key(writer, seq)))
    ]
    assert "it stamps other bytes" in problems[0][2]
    check = await target.verify()
    assert check.code == 5, check.out + check.err
    assert "it stamps other bytes" in check.out


@pytest.mark.parametrize("stamped", ["plain"], indirect=True)
async def test_a_token_planted_under_another_spelling_of_its_number_is_not_taken(
    stamped: Target, seaweed, pki, monkeypatch
):
    """The real token of a rolled-up link removed, its bytes put back under a name that
    spells the same number with more zeros (listed first): the link has no token."""
    target = stamped
    assert (await target.cli("rollup")).code == 0
    _, _, covered = await _audit(target, pki, 2048, monkeypatch)
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        seq = sorted(covered[writer])[1]  # a link after the first stamped one
        real = stamp_key(writer, seq)
        token = await ins.get(real)
        await ins.delete(real)
        planted = real.replace(f"/{seq:012}.tsr", f"/{seq:014}.tsr")
        await ins.put(planted, token)
    found, _, _ = await _audit(target, pki, 2048, monkeypatch)
    problems = found[0]
    assert [(k, w) for k, w, _ in problems] == [(ProblemKind.UNPROVEN, ins.store.full_key(real))]
