"""Every token checked, on all four storages: a head's token removed is UNPROVEN; a rewrite
whose head token was replaced by a fresh one from the same authority leaves the other
links' tokens stamping other bytes (TIMESTAMP); every token removed is a limit verify names."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from archiver.settings import TimestampSettings
from archiver.storage.layout import link_key, stamp_key
from archiver.timestamping import Stamper, load_anchors, verify_token
from tests.adversary.conftest import Target
from tests.adversary.insider import insider


async def test_a_head_token_removed_is_unproven(stamped: Target, seaweed):
    target = stamped
    if target.kind == "local":  # the untouched archive, once: intact, T covered
        before = await target.verify()
        assert before.code == 0, before.out + before.err
        assert "T" in before.out.split("covered: ")[1].split(";")[0].split(", ")
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        head = await ins.head(writer)
        await ins.delete(stamp_key(writer, head.seq))
    check = await target.verify()
    assert check.code == 5, check.out + check.err
    shown = ins.store.full_key(stamp_key(writer, head.seq))
    assert f"UNPROVEN {shown}: link {head.seq} of writer {writer} has no timestamp token" in (
        check.out
    )


async def test_a_rewrite_with_a_fresh_head_token_is_caught(stamped: Target, seaweed, pki, tsa):
    target = stamped
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        head = await ins.head(writer)
        await ins.consistent_rewrite(writer, head.seq - 1)
        new_head = await ins.head(writer)
        settings = TimestampSettings(url=tsa, ca_bundle=pki.ca_cert)
        async with aiohttp.ClientSession() as session:
            stamper = Stamper(session, settings, load_anchors(pki.ca_cert))
            fresh = await stamper.stamp(await ins.get(link_key(writer, new_head.seq)))
        await ins.put(stamp_key(writer, new_head.seq), fresh.token)
    check = await target.verify()
    assert check.code == 5, check.out + check.err
    rewritten = f"TIMESTAMP {ins.store.full_key(stamp_key(writer, head.seq - 1))}"
    assert any(
        line.startswith(rewritten) and "it stamps other bytes" in line
        for line in check.out.splitlines()
    ), check.out


@pytest.mark.parametrize("stamped", ["local"], indirect=True)
async def test_every_token_removed_is_a_named_limit(stamped: Target, seaweed):
    target = stamped
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        head = await ins.head(writer)
        for seq in range(1, head.seq + 1):
            await ins.delete(stamp_key(writer, seq))
    check = await target.verify()
    assert check.code == 0, check.out + check.err
    assert f"TIMESTAMP chain {writer}: no timestamp token on any of its" in check.out
    assert "written before timestamps were switched on" in check.out


async def _stamp(ins, pki, tsa: str, data: bytes):
    settings = TimestampSettings(url=tsa, ca_bundle=pki.ca_cert)
    async with aiohttp.ClientSession() as session:
        return await Stamper(session, settings, load_anchors(pki.ca_cert)).stamp(data)


@pytest.mark.parametrize("stamped", ["local"], indirect=True)
async def test_a_token_replaced_by_a_later_one_is_out_of_order(stamped: Target, seaweed, pki, tsa):
    """Link 1's bytes unchanged, its token replaced by a fresh one from the same authority:
    valid alone, but dated after link 2's token."""
    target = stamped
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        anchors = load_anchors(pki.ca_cert)
        second = verify_token(
            await ins.get(stamp_key(writer, 2)), await ins.get(link_key(writer, 2)), anchors
        )
        data = await ins.get(link_key(writer, 1))
        # The TSA's clock counts whole seconds: ask again until its time is past link 2's.
        deadline = asyncio.get_running_loop().time() + 10
        fresh = await _stamp(ins, pki, tsa, data)
        while fresh.gen_time <= second.gen_time:
            assert asyncio.get_running_loop().time() < deadline, "the TSA's clock did not move"
            await asyncio.sleep(0.05)
            fresh = await _stamp(ins, pki, tsa, data)
        await ins.put(stamp_key(writer, 1), fresh.token)
    check = await target.verify()
    assert check.code == 5, check.out + check.err
    assert f"TIMESTAMP {stamp_key(writer, 2)}: dated " in check.out
    assert "before the token of an earlier link" in check.out


@pytest.mark.parametrize("stamped", ["local"], indirect=True)
async def test_lines_dated_after_their_token_are_caught(stamped: Target, seaweed, pki, tsa):
    """An insider with the TSA at hand rewrites link 1's lines (archived a day later than
    written), recomputes the chain and stamps every link afresh: each token is valid and in
    order, but older than the lines it covers."""
    target = stamped
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        link = await ins.link(writer, 1)
        lines = [json.loads(x) for x in (await ins.get(link.manifest_key)).splitlines()]
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
        for line in lines:
            line["archived_at"] = later
        content = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines).encode()
        await ins.put(link.manifest_key, content)
        head = await ins.relink(writer, 1, content)
        for seq in range(1, head.seq + 1):
            fresh = await _stamp(ins, pki, tsa, await ins.get(link_key(writer, seq)))
            await ins.put(stamp_key(writer, seq), fresh.token)
    check = await target.verify()
    assert check.code == 5, check.out + check.err
    assert f"TIMESTAMP {stamp_key(writer, 1)}: dated " in check.out
    assert "lines dated after the fact" in check.out
