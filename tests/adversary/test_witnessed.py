"""With a witness: a consistent rewrite, or a truncation, behind the newest witnessed
checkpoint is CHAIN-REWRITTEN (exit 5) on all four storages, whatever else the insider
recomputed; the witness refuses to cosign such a chain; a rewrite after the newest
checkpoint is a limit verify names."""

from __future__ import annotations

from tests.adversary.conftest import Target
from tests.adversary.insider import insider


async def test_a_consistent_rewrite_behind_a_witnessed_checkpoint_is_caught(
    target: Target, seaweed
):
    await target.make_witness()
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        head = await ins.head(writer)
        altered = await ins.consistent_rewrite(writer, head.seq - 1)
    check = await target.verify(witness=True)
    assert check.code == 5, check.out + check.err
    rewritten = [line for line in check.out.splitlines() if line.startswith("CHAIN-REWRITTEN")]
    assert rewritten, check.out
    named = f"_archiver/chain/{writer}/{head.seq:012d}.json: rewritten: link {head.seq} has"
    assert any(named in line and "witnessed at" in line for line in rewritten), check.out
    assert altered not in check.out  # its line was edited to match: only the chain tells


async def test_a_truncation_behind_a_witnessed_checkpoint_is_caught(target: Target, seaweed):
    await target.make_witness()
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        cut = await ins.truncate(writer)
    check = await target.verify(witness=True)
    assert check.code == 5, check.out + check.err
    lines = [line for line in check.out.splitlines() if line.startswith("CHAIN-REWRITTEN")]
    assert any(cut.key in line and "truncated" in line for line in lines), check.out
