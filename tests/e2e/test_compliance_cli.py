"""get, search, verify and hold as an auditor runs them: the CLI, on a machine with no state.

The archive is written by an in-process backfill (its state database then
deleted); every command below sees only the storage settings.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import urllib.request
from pathlib import Path

import pytest

from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from tests.support.cli import cli_env, run_cli, s3_storage_env
from tests.support.pipeline import backfill, make_settings, read_archive
from tests.support.seaweed import admin_client


@pytest.fixture(params=["local", "s3"])
async def archived(request, tmp_path, make_bucket, s3_settings, s3_env):
    """(simulator, storage settings, CLI environment, working directory of the fresh machine)."""
    sim = Simulator(SimConfig(seed=9, calls=6, recording_fraction=1.0, max_size=120_000))
    if request.param == "local":
        storage = StorageSettings(url=str(tmp_path / "archive"))
        env = {"ARCHIVER_STORAGE__URL": storage.url}
    else:
        lock = {"object_lock_mode": "GOVERNANCE", "retention_days": 1}
        storage = s3_settings(await make_bucket(object_lock=True), **lock)
        env = {
            **s3_storage_env(storage, s3_env),
            "ARCHIVER_STORAGE__OBJECT_LOCK_MODE": "GOVERNANCE",
            "ARCHIVER_STORAGE__RETENTION_DAYS": "1",
        }
    builder = tmp_path / "builder"
    builder.mkdir()
    async with sim.serve() as base:
        await backfill(make_settings(sim, base, storage, str(builder / "state.sqlite3")), sim)
    (builder / "state.sqlite3").unlink()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env |= {"ARCHIVER_STATE__URL": str(fresh / "state.sqlite3"), "ARCHIVER_OPERATOR": "auditor-1"}
    return sim, storage, cli_env(env), fresh


async def _audit_records(storage: StorageSettings) -> list[dict]:
    async with open_store(storage) as store:
        keys = [obj.key async for obj in store.list("_archiver/audit/")]
        return [json.loads(b"".join([c async for c in store.read(k)])) for k in keys]


async def test_get_search_verify_and_hold_from_a_fresh_machine(archived):
    sim, storage, env, fresh = archived
    call = sim.calls[0]

    async def cli(*args: str):
        return await run_cli(*args, env=env, cwd=fresh)

    # By cdr id, into a directory: the file takes the object's name.
    got = await cli("get", call.cdr_id, "-o", str(fresh))
    assert got.code == 0, got.err
    written = fresh / f"{call.sip_call_id}.{call.fmt}"
    assert hashlib.sha256(written.read_bytes()).hexdigest() == call.sha256()
    assert "verified against manifests/date=" in got.out

    url = await cli("get", call.sip_call_id, "--url", "--expires", "60")
    assert url.code == 0, url.err
    link = url.out.strip()
    if storage.is_s3:
        assert "X-Amz-Expires=60" in link
        with urllib.request.urlopen(link, timeout=10) as resp:  # loopback SeaweedFS
            assert hashlib.sha256(resp.read()).hexdigest() == call.sha256()
    else:
        assert Path(link).is_absolute()
        assert hashlib.sha256(Path(link).read_bytes()).hexdigest() == call.sha256()

    missing = await cli("get", "no-such-call", "-o", str(fresh / "x"))
    assert (missing.code, missing.err) == (4, "archiver: no archived call with id 'no-such-call'\n")
    assert not (fresh / "x").exists()

    found = await cli("search", "--phone", call.from_number, "--format", "json")
    assert found.code == 0, found.err
    rows = json.loads(found.out)
    assert call.sip_call_id in {r["sip_call_id"] for r in rows}
    assert all(call.from_number in (r["from_number"], r["to_number"]) for r in rows)
    exported = await cli("search", "--until", "2021-02-18", "--format", "csv")
    listed = list(csv.DictReader(io.StringIO(exported.out)))
    assert {r["sip_call_id"] for r in listed} == {c.sip_call_id for c in sim.calls}

    verified = await cli("verify", "--since", "2021-02-17", "--until", "2021-02-18")
    assert verified.code == 0, verified.out + verified.err
    assert f"verified {len(sim.calls)} object(s)" in verified.out

    if storage.is_s3:
        on = await cli("hold", call.cdr_id, "--on")
        assert on.code == 0, on.err
        assert "legal hold ON, retention GOVERNANCE until" in on.out
        off = await cli("hold", call.cdr_id, "--off")
        assert "legal hold OFF" in off.out
    else:
        refused = await cli("hold", call.cdr_id, "--on")
        assert refused.code == 2
        assert "legal holds need S3 Object Lock" in refused.err

    assert not (fresh / "state.sqlite3").exists(), "a retrieval command opened the state"
    records = await _audit_records(storage)
    assert {r["operator"] for r in records} == {"auditor-1"}
    done = sorted((r["action"], r["result"]) for r in records)
    expected = [("get", "not_found"), ("get", "ok"), ("search", "ok"), ("search", "ok")]
    expected += [("url", "ok"), ("verify", "ok")]
    if storage.is_s3:
        expected += [("hold-off", "ok"), ("hold-on", "ok")]
    assert done == sorted(expected)
    assert all("X-Amz" not in json.dumps(r) for r in records), "a presigned URL was recorded"


async def test_a_corrupt_or_missing_object_is_caught_by_get_and_verify(archived, seaweed):
    sim, storage, env, fresh = archived
    corrupt, gone = sim.calls[0], sim.calls[1]
    forged = bytes(b ^ 0xFF for b in corrupt.content())
    lines = {line["sip_call_id"]: line for line in (await read_archive(storage)).lines}
    corrupt_key = lines[corrupt.sip_call_id]["object_key"]
    gone_key = lines[gone.sip_call_id]["object_key"]
    if storage.is_s3:
        bucket = storage.bucket_and_prefix[0]
        async with admin_client(seaweed) as client:
            # Object Lock keeps the originals: these are a new version and a delete marker.
            await client.put_object(Bucket=bucket, Key=corrupt_key, Body=forged)
            await client.delete_object(Bucket=bucket, Key=gone_key)
    else:
        (Path(storage.url) / corrupt_key).write_bytes(forged)
        (Path(storage.url) / gone_key).unlink()

    out = fresh / "out"
    out.mkdir()
    bad = await run_cli("get", corrupt.sip_call_id, "-o", str(out / "c.wav"), env=env, cwd=fresh)
    absent = await run_cli("get", gone.cdr_id, "-o", str(out / "g.wav"), env=env, cwd=fresh)
    if storage.is_s3:
        # Object Lock kept the archived versions: get serves them, and says why.
        for result, what in ((bad, "corrupt"), (absent, "missing")):
            assert result.code == 0, result.err
            assert result.err.startswith(
                f"archiver: warning: the current object is not the archived recording ({what}: "
            )
        assert hashlib.sha256((out / "c.wav").read_bytes()).hexdigest() == corrupt.sha256()
        assert hashlib.sha256((out / "g.wav").read_bytes()).hexdigest() == gone.sha256()
    else:
        assert bad.code == 5
        assert bad.err.startswith("archiver: corrupt: ")
        assert "no file written" in bad.err
        assert absent.code == 5
        assert absent.err.startswith("archiver: missing: ")
        assert list(out.iterdir()) == [], "a file was left behind"

    verified = await run_cli("verify", "--deep", env=env, cwd=fresh)
    assert verified.code == 5
    problems = [
        line for line in verified.out.splitlines() if line.startswith(("CORRUPT", "MISSING"))
    ]
    assert len(problems) == 2
    assert any(line.startswith("CORRUPT") and corrupt.sip_call_id in line for line in problems)
    assert any(line.startswith("MISSING") and gone.sip_call_id in line for line in problems)
    assert "2 problem(s)" in verified.out
    if storage.is_s3:
        assert all("still holds the archived bytes" in line for line in problems)
