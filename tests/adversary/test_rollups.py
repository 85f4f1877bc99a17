"""Rollups under attack, through the real CLI: a rollup whose parts disagree is ROLLUP
(exit 5) and is not used, the small objects still prove the archive; a small object
removed or altered after its rollup is caught exactly as without rollups; a rollup
planted for a writer is refused; under Object Lock, rollups are written once."""

from __future__ import annotations

import json

import pytest

from archiver.manifest.chain import sha256_hex
from archiver.manifest.rollup import RollupEntry, build_rollup
from archiver.storage.layout import rollup_data_key, rollup_entries_key, rollup_key
from tests.adversary.conftest import Target, make_target
from tests.adversary.insider import insider


# On a folder (no ETag: every small object read) beyond CI's budget: run with -m ondemand.
@pytest.fixture(params=["plain", pytest.param("local", marks=pytest.mark.ondemand)])
async def rolled(request, tmp_path, seaweed, make_bucket, s3_settings) -> Target:
    """A small archive (3 manifest objects of 2 lines), rolled up by ``archiver rollup``."""
    target = await make_target(request.param, tmp_path, seaweed, make_bucket, s3_settings)
    done = await target.cli("rollup")
    assert done.code == 0, done.out + done.err
    assert "wrote rollup 1" in done.out
    return target


def _lines(result) -> list[str]:
    return [line for line in result.out.splitlines() if line.startswith("ROLLUP ")]


def _summary(result) -> str:
    return next(line for line in result.out.splitlines() if line.startswith("verified "))


async def test_a_rollup_whose_parts_disagree_is_reported_and_not_used(rolled: Target, seaweed):
    clean = await rolled.verify()
    assert clean.code == 0, clean.out + clean.err
    assert "ROLLUPS 1 rollup(s) checked, covering " in clean.out
    if rolled.kind != "local":  # a folder lists no ETag: every small object is read
        assert "; 0 manifest object(s) proven" not in clean.out
    async with insider(rolled, seaweed) as ins:
        (writer,) = await ins.writers()
        keys = {
            "lines": rollup_data_key(writer, 1),
            "entries": rollup_entries_key(writer, 1),
            "record": rollup_key(writer, 1),
        }
        originals = {name: await ins.get(key) for name, key in keys.items()}
        for name, key in keys.items():
            data = originals[name]
            if name == "record":
                body = json.loads(data)
                body["lines"] += 1  # a record that lies about its run
                altered = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            elif name == "entries":
                altered = data.replace(b'\\"lines\\":', b'\\"lines\\":9', 1)
            else:
                altered = data.replace(b"cdr_v2", b"cdr_v3", 1)
            assert altered != data
            await ins.put(key, altered)
            check = await rolled.verify()
            assert check.code == 5, (name, check.out + check.err)
            problems = _lines(check)
            assert problems, (name, check.out)
            # Every other line of the report is the clean one: the small objects proved it.
            assert _summary(check).split(": ")[0] == _summary(clean).split(": ")[0]
            assert not [p for p in check.out.splitlines() if p.startswith("MANIFEST-")]
            await ins.put(key, data)
        # The record removed: the rollup is then unfinished (a note), never used.
        await ins.delete(keys["record"])
    check = await rolled.verify()
    assert check.code == 0, check.out + check.err
    assert "unfinished rollup" in check.out
    assert _summary(check) == _summary(clean)


async def test_small_objects_altered_after_their_rollup_and_planted_rollups_are_caught(
    rolled: Target, seaweed
):
    async with insider(rolled, seaweed) as ins:
        (writer,) = await ins.writers()
        link = await ins.link(writer, 2)
        manifest = await ins.get(link.manifest_key)
        await ins.delete(link.manifest_key)
        missing = await rolled.verify()
        assert missing.code == 5, missing.out
        assert f"MANIFEST-MISSING {link.manifest_key}" in missing.out
        await ins.put(link.manifest_key, manifest)
        # A link rewritten with another manifest size: its rollup copy no longer proves it.
        stored = await ins.get(link.key)
        body = json.loads(stored)
        body["lines"] += 1
        await ins.put(link.key, json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    altered = await rolled.verify()
    assert altered.code == 5, altered.out
    assert "CHAIN-BROKEN" in altered.out
    # Nothing new after rollup 1: nothing is written over the altered link.
    again = await rolled.cli("rollup")
    assert again.code == 0, again.out + again.err
    assert "nothing due" in again.out
    # Then a rollup planted for the writer (one archive for all: CI's time budget).
    async with insider(rolled, seaweed) as ins:
        (writer,) = await ins.writers()
        link = await ins.link(writer, 1)
        content = await ins.get(link.manifest_key)
        # A forged run: link 1 under another manifest content, entries and record consistent.
        forged_content = content.replace(b"cdr_v2", b"cdr_v3", 1)
        assert forged_content != content
        forged = type(link)(**{**_fields(link), "manifest_sha256": sha256_hex(forged_content)})
        entries, data, record = build_rollup(
            writer,
            2,
            [RollupEntry(1, forged.to_bytes())],
            [forged_content],
            prev_record=await ins.get(rollup_key(writer, 1)),
            created_at="2026-12-05T00:00:00Z",
        )
        await ins.put(record.entries_key, entries)
        await ins.put(record.data_key, data)
        await ins.put(record.key, record.to_bytes())
        # A self-consistent rollup of a writer that has no chain at all.
        ghost = "wplanted0000000"
        alone = type(link)(**{**_fields(forged), "writer": ghost})
        parts = build_rollup(
            ghost,
            1,
            [RollupEntry(1, alone.to_bytes())],
            [forged_content],
            prev_record=None,
            created_at="2026-12-05T00:00:00Z",
        )
        for key, blob in zip(
            (parts[2].entries_key, parts[2].data_key, parts[2].key),
            (parts[0], parts[1], parts[2].to_bytes()),
            strict=True,
        ):
            await ins.put(key, blob)
    check = await rolled.verify()
    assert check.code == 5, check.out
    assert any(rollup_key(writer, 2) in line for line in _lines(check)), check.out
    assert any(
        line.startswith(f"ROLLUP {rollup_key(ghost, 1)}: it ends at link 1")
        for line in _lines(check)
    ), check.out
    refused = await rolled.cli("rollup")
    assert refused.code == 5, refused.out + refused.err


def _fields(link) -> dict:
    return {name: getattr(link, name) for name in type(link).__slots__}


async def test_rollups_under_object_lock(tmp_path, seaweed, make_bucket, s3_settings):
    """Written once under retention; a second pass writes nothing; verify proves through them."""
    target = await make_target("locked", tmp_path, seaweed, make_bucket, s3_settings)
    done = await target.cli("rollup")
    assert done.code == 0, done.out + done.err
    again = await target.cli("rollup")
    assert again.code == 0, again.out + again.err
    assert "nothing due" in again.out
    after = await target.verify()
    assert after.code == 0, after.out + after.err
    assert ": all intact;" in _summary(after)
    assert "; 0 manifest object(s) proven" not in after.out
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        retention = await ins.client.get_object_retention(
            Bucket=ins.bucket, Key=ins.store.full_key(rollup_key(writer, 1))
        )
    assert retention["Retention"]["Mode"] == "GOVERNANCE"
