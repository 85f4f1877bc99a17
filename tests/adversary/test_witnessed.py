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


async def test_history_added_after_the_newest_checkpoint_is_a_named_limit(
    tmp_path, seaweed, make_bucket, s3_settings
):
    """A forged batch appended after the newest checkpoint, by someone with the storage's
    keys: the chain still extends every checkpoint, so verify passes, and its assurance
    line says up to when the witness vouches."""
    import hashlib
    import json

    from archiver.manifest.chain import Head, next_link
    from archiver.storage.layout import head_key, manifest_key
    from tests.adversary.conftest import make_target

    target = await make_target("local", tmp_path, seaweed, make_bucket, s3_settings)
    await target.make_witness()
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        head = await ins.head(writer)
        audio = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 20
        key = "recordings/2021/02/17/forged-after.mp3"
        await ins.put(key, audio)
        real = json.loads((await ins.get((await ins.link(writer, 1)).manifest_key)).splitlines()[0])
        line = real | {
            "sip_call_id": "forged-after",
            "cdr_id": "forged-after-cdr",
            "object_key": key,
            "sha256": hashlib.sha256(audio).hexdigest(),
            "size": len(audio),
        }
        content = (json.dumps(line) + "\n").encode()
        forged = manifest_key("2021-02-17", head.seq + 1, writer)
        await ins.put(forged, content)
        link = next_link(writer, head.seq + 1, forged, content, 1, (head.seq, head.link_sha256))
        await ins.put(link.key, link.to_bytes())
        await ins.put(head_key(writer), Head.of(link.to_bytes()).to_bytes())
    check = await target.verify(witness=True)
    assert check.code == 0, check.out + check.err
    assert "W (up to 20" in check.out  # what the witness vouches for ends at its newest
