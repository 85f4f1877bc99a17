"""An archive that already holds two call lines of a call: ``verify`` says DUPLICATE (exit 5,
both lines named), ``archiver dedupe`` records which line stands without rewriting anything,
then ``verify`` exits 0 and ``search`` shows each call once. On a local folder and SeaweedFS.

The duplicates are made as the archiver made them before the archive was asked: a second
writer (a lost state's replacement) chains a manifest object of its own holding lines of
calls another writer's manifest already holds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from archiver.manifest.chain import next_link, sha256_hex
from archiver.manifest.supersede import SUPERSEDE_PREFIX
from archiver.manifest.writer import advance_head
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from archiver.storage.layout import CHAIN_CONTENT_TYPE, MANIFEST_CONTENT_TYPE, manifest_key
from tests.support.cli import QUICK, archiver_env, run_cli, s3_storage_env
from tests.support.pipeline import read_archive

SINCE = "2021-02-17 08:00"
UNTIL = "2021-02-17 14:00"


@pytest.fixture(params=["local", "s3"])
async def target(request, tmp_path, make_bucket, s3_settings, s3_env):
    """(StorageSettings for checking, environment variables for the CLI)."""
    if request.param == "local":
        root = tmp_path / "archive"
        return StorageSettings(url=str(root)), {"ARCHIVER_STORAGE__URL": str(root)}
    bucket = await make_bucket()
    settings = s3_settings(bucket)
    return settings, s3_storage_env(settings, s3_env)


async def _read(store: ObjectStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(key)])


def relined(line: bytes, **changes: object) -> bytes:
    """The manifest line ``line`` with ``changes`` (compact JSON, as the writer writes)."""
    return json.dumps({**json.loads(line), **changes}, separators=(",", ":")).encode()


async def write_second_writer(store: ObjectStore, lines: list[bytes], writer: str) -> str:
    """What flush_manifest does for a new state's first batch: the manifest object,
    its chain link, the head. Returns the manifest key."""
    first = json.loads(lines[0])
    day = first["call_started_at"][:10]
    key = manifest_key(day, 1, writer)
    content = b"".join(line + b"\n" for line in lines)
    await store.put_bytes(
        key, content, sha256=sha256_hex(content), content_type=MANIFEST_CONTENT_TYPE
    )
    link = next_link(writer, 1, key, content, len(lines), None).to_bytes()
    await store.put_bytes(
        f"_archiver/chain/{writer}/{1:012d}.json",
        link,
        sha256=sha256_hex(link),
        content_type=CHAIN_CONTENT_TYPE,
    )
    await advance_head(store, link)
    return key


async def test_duplicates_are_reported_then_superseded_by_a_chained_record(
    target, tmp_path: Path
) -> None:
    storage, storage_env = target
    sim = Simulator(
        SimConfig(seed=21, calls=12, recording_fraction=1.0, min_size=2_000, max_size=20_000)
    )
    async with sim.serve() as base:
        # One manifest object: no flush before the backfill's last (a 0.2 s interval cut
        # the calls into two objects now and then on a loaded machine).
        tuning = {**QUICK, "ARCHIVER_MANIFEST_INTERVAL": "600"}
        env = archiver_env(tmp_path, base=base, sim=sim, storage=storage_env, tuning=tuning)
        done = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
        assert done.code == 0, done.err
    async with open_store(storage) as store:
        [original] = [o.key async for o in store.list("manifests/")]
        lines = [line for line in (await _read(store, original)).split(b"\n") if line]
        # A second state archives the same calls later: the same lines, archived again.
        twice = [relined(line, archived_at="2099-01-01T00:00:00Z") for line in lines[:3]]
        second = await write_second_writer(store, twice, "wsecondstate01")
        before = {o.key: o.sha256 async for o in store.list("")}

    # verify remembers the lines on its scratch file (ARCHIVER_SCRATCH_DIR), removed at exit.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    found = await run_cli("verify", env={**env, "ARCHIVER_SCRATCH_DIR": str(scratch)}, cwd=tmp_path)
    assert found.code == 5, found.out + found.err
    assert list(scratch.iterdir()) == []
    duplicates = [line for line in found.out.splitlines() if line.startswith("DUPLICATE ")]
    assert len(duplicates) == 3, found.out
    # No writable place for it: the same findings, from tables in memory, with a warning.
    (tmp_path / "not-a-folder").write_text("")
    in_memory = await run_cli(
        "verify", env={**env, "ARCHIVER_SCRATCH_DIR": str(tmp_path / "not-a-folder")}, cwd=tmp_path
    )
    assert in_memory.code == 5, in_memory.out + in_memory.err
    assert "keeping the command's scratch tables in memory" in in_memory.err, in_memory.err
    assert [line for line in in_memory.out.splitlines() if line.startswith("DUPLICATE ")] == (
        duplicates
    )
    for number, line in enumerate(twice, start=1):
        cdr = json.loads(line)["cdr_id"]
        [report] = [d for d in duplicates if f"cdr {cdr};" in d]
        # Both lines named: the second writer's, and the first writer's as the first.
        assert report.startswith(f"DUPLICATE {second} line {number} "), report
        assert f"the first is {original} line {number} " in report, report

    repaired = await run_cli("dedupe", env=env, cwd=tmp_path)
    assert repaired.code == 0, repaired.out + repaired.err
    assert "3 duplicate call line(s) superseded" in repaired.out, repaired.out
    async with open_store(storage) as store:
        after = {o.key: o.sha256 async for o in store.list("")}
        # Nothing rewritten or removed; only the records, their chain and an audit record added.
        assert {k: v for k, v in after.items() if k in before} == before
        added = sorted(set(after) - set(before))
        assert [k for k in added if k.startswith(SUPERSEDE_PREFIX)], added
        assert all(k.startswith("_archiver/") for k in added), added
        [record_key] = [k for k in added if k.startswith(SUPERSEDE_PREFIX)]
        records = [json.loads(r) for r in (await _read(store, record_key)).splitlines()]
    assert {(r["superseded_manifest"], r["kept_manifest"]) for r in records} == {(second, original)}
    assert sorted(r["superseded_line"] for r in records) == [1, 2, 3]

    clean = await run_cli("verify", env=env, cwd=tmp_path)
    assert clean.code == 0, clean.out + clean.err
    assert "DUPLICATE" not in clean.out
    assert "3 duplicate call line(s) superseded" in clean.out, clean.out

    shown = await run_cli("search", "--format", "json", env=env, cwd=tmp_path)
    assert shown.code == 0, shown.err
    ids = [row["cdr_id"] for row in json.loads(shown.out)]
    assert len(ids) == len(set(ids)) == len(lines), shown.out

    cdr = json.loads(twice[0])["cdr_id"]
    got = await run_cli("get", cdr, "-o", str(tmp_path / "one.bin"), env=env, cwd=tmp_path)
    assert got.code == 0, got.out + got.err
    data = (tmp_path / "one.bin").read_bytes()
    assert hashlib.sha256(data).hexdigest() == json.loads(twice[0])["sha256"]

    again = await run_cli("dedupe", env=env, cwd=tmp_path)
    assert again.code == 0, again.out + again.err
    assert "no duplicate call lines" in again.out, again.out
    assert len((await read_archive(storage)).lines) == len(lines) + 3
    if storage.is_s3:
        return
    # A record altered after it was written is not applied: its object no longer
    # matches its chain link, and the duplicates it named count again.
    record = Path(storage.url) / record_key
    record.write_bytes(record.read_bytes().replace(b'"kept_line":1', b'"kept_line":2'))
    altered = await run_cli("verify", env=env, cwd=tmp_path)
    assert altered.code == 5, altered.out
    kinds = [line.split(" ", 1)[0] for line in altered.out.splitlines()]
    assert kinds.count("MANIFEST-ALTERED") == 1, altered.out
    assert kinds.count("DUPLICATE") == 3, altered.out
