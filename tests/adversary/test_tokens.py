"""Every token checked, on all four storages: a head's token removed is UNPROVEN; a rewrite
whose head token was replaced by a fresh one from the same authority leaves the other
links' tokens stamping other bytes (TIMESTAMP); every token removed is a limit verify names."""

from __future__ import annotations

import aiohttp
import pytest

from archiver.settings import TimestampSettings
from archiver.storage.layout import link_key, stamp_key
from archiver.timestamping import Stamper, load_anchors
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
