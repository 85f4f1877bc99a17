"""Without a witness, in a versioned bucket (plain versioning, and Object Lock): the
bucket's own history betrays a truncation by delete markers and a chain rewritten as new
versions. Without versions (a folder, a plain bucket), or with versions removed for good,
it cannot: verify says so in its assurance line."""

from __future__ import annotations

import pytest

from tests.adversary.conftest import VERSIONED, Target
from tests.adversary.insider import insider
from tests.support.seaweed import admin_client


@pytest.mark.parametrize("target", VERSIONED, indirect=True)
async def test_a_truncation_by_delete_markers_is_caught(target: Target, seaweed):
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        cut = await ins.truncate(writer)
    check = await target.verify()
    assert check.code == 5, check.out + check.err
    head = f"CHAIN-REWRITTEN _archiver/chain/{writer}/head.json: version "
    assert any(
        line.startswith(head) and f"it once named link {cut.seq}, which the chain no longer" in line
        for line in check.out.splitlines()
    ), check.out
    assert f"CHAIN-REWRITTEN {cut.key}: written once, yet 1 delete marker(s)" in check.out
    assert f"MANIFEST-HIDDEN {cut.manifest_key}" in check.out
    assert "threat-model rows covered: R, S-versions" in check.out


@pytest.mark.parametrize("target", VERSIONED, indirect=True)
async def test_a_link_and_manifest_object_rewritten_as_new_versions_are_caught(
    target: Target, seaweed
):
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        head = await ins.head(writer)
        link = await ins.link(writer, head.seq - 1)
        await ins.consistent_rewrite(writer, head.seq - 1)
    check = await target.verify()
    assert check.code == 5, check.out + check.err
    assert f"CHAIN-REWRITTEN {link.key}: written once, yet 2 versions (rewritten)" in check.out
    assert f"MANIFEST-ALTERED {link.manifest_key}: written once, yet 2 versions" in check.out
    assert f"CHAIN-REWRITTEN _archiver/chain/{writer}/head.json: version" in check.out


@pytest.mark.parametrize("target", ["local", "plain"], indirect=True)
async def test_without_versions_or_a_witness_a_consistent_rewrite_is_a_named_limit(
    target: Target, seaweed
):
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        await ins.consistent_rewrite(writer, 1)
    check = await target.verify()
    # The limit of this row of the threat model: nothing in the storage remembers.
    assert check.code == 0, check.out + check.err
    assert "all intact" in check.out
    assert "not covered: S-versions (a consistent rewrite or truncation leaves no trace)" in (
        check.out
    )
    assert "W (an insider's consistent rewrite or truncation)" in check.out


@pytest.mark.parametrize("target", ["versioned"], indirect=True)
async def test_versions_removed_for_good_are_a_named_limit(target: Target, seaweed):
    """Versioning without Object Lock: whoever may delete versions erases the history."""
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        cut = await ins.truncate(writer)
        full = [ins.store.full_key(k) for k in (cut.key, cut.manifest_key)]
        full.append(ins.store.full_key(f"_archiver/chain/{writer}/head.json"))
    async with admin_client(seaweed) as client:
        bucket = ins.bucket
        listing = await client.list_object_versions(Bucket=bucket)
        head_versions = [v for v in listing.get("Versions", []) if v["Key"] == full[2]]
        doomed = [v for v in listing.get("Versions", []) + listing.get("DeleteMarkers", [])]
        for item in doomed:
            if item["Key"] in full[:2] or (item["Key"] == full[2] and not item["IsLatest"]):
                await client.delete_object(
                    Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"]
                )
        assert head_versions
    check = await target.verify()
    assert check.code == 0, check.out + check.err
    assert "not covered: S-lock (versions can be removed for good)" in check.out
