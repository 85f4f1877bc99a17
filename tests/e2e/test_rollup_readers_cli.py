"""Readers and ``verify --since/--until`` through rollups, as the CLI runs them, on a local
folder: search and the console's index give the calls of the small objects (each once)
while reading the rollups, get finds a call from a cold index that read them; a rollup
whose lines were altered is not used and verify names it; a range verify finds an altered
recording or manifest object of its range, exits 0 on a clean one, and says what it took
from the rollup records."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from archiver.console.index import CallIndex, CallQuery
from archiver.console.tables import SCHEMA
from archiver.index_db import IndexDatabase
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from archiver.storage.layout import ROLLUP_PREFIX
from tests.support.cli import cli_env, run_cli
from tests.support.pipeline import backfill, make_settings

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# Three runs of one writer: days 1-3 (rolled up), days 4-6 (rolled up), day 7 (the tail).
RUNS = ((11, 30, 1, 3), (12, 30, 4, 3), (13, 6, 7, 1))


async def _archive(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    storage = StorageSettings(url=str(tmp_path / "archive"))
    builder = tmp_path / "builder"
    builder.mkdir()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env = cli_env(
        {"ARCHIVER_STORAGE__URL": storage.url, "ARCHIVER_STATE__URL": str(fresh / "s.sqlite3")}
    )
    for seed, calls, day, days in RUNS:
        start = datetime(2021, 2, day, 8, 0, tzinfo=TZ)
        sim = Simulator(
            SimConfig(
                seed=seed,
                calls=calls,
                start=start,
                span=timedelta(days=days) - timedelta(hours=12),
                recording_fraction=1.0,
                min_size=1_000,
                max_size=3_000,
            )
        )
        async with sim.serve() as base:
            settings = make_settings(
                sim, base, storage, str(builder / "state.sqlite3"), manifest_batch=3
            )
            await backfill(settings, sim)
        if day < 7:
            rolled = await run_cli("rollup", env=env, cwd=fresh)
            assert rolled.code == 0, rolled.out + rolled.err
    return Path(storage.url), env, fresh


async def _search(env: dict[str, str], cwd: Path) -> list[tuple[str, str]]:
    found = await run_cli(
        "search",
        "--since",
        "2021-01-01",
        "--until",
        "2022-01-01",
        "--format",
        "csv",
        env=env,
        cwd=cwd,
    )
    assert found.code == 0, found.out + found.err
    rows = list(csv.DictReader(io.StringIO(found.out)))
    return sorted((row["cdr_id"], row.get("manifest_key", "")) for row in rows)


async def _console(root: Path, path: Path) -> tuple[list[tuple[str, str]], list[int]]:
    async with open_store(StorageSettings(url=str(root))) as store:
        db = IndexDatabase.fresh(path, SCHEMA)
        index = CallIndex(db)
        await index.refresh(store)
        found, total = await index.search(CallQuery(), 0, 1000)
        db.close()
    with sqlite3.connect(path) as conn:
        usable = [int(u) for (u,) in conn.execute("SELECT usable FROM rollups_read ORDER BY key")]
    assert total == len(found)
    return sorted((i.call.cdr_id, i.call.manifest_key or "") for i in found), usable


async def _get(env: dict[str, str], cwd: Path, ident: str, work: Path) -> tuple[bytes, int]:
    """``get`` from a cold local index: the recording's bytes, and the rollups it read."""
    work.mkdir()
    index = work / "index.sqlite3"
    cold = {**env, "ARCHIVER_CONSOLE__INDEX_PATH": str(index)}
    got = await run_cli("get", ident, "-o", str(work / "call.wav"), env=cold, cwd=cwd)
    assert got.code == 0, got.out + got.err
    with sqlite3.connect(index) as conn:
        (rollups,) = conn.execute("SELECT COUNT(*) FROM id_rollups").fetchone()
    return (work / "call.wav").read_bytes(), int(rollups)


def _day_of(root: Path, day: str) -> tuple[Path, dict]:
    manifest = sorted((root / f"manifests/date={day}").glob("*.jsonl"))[0]
    return manifest, json.loads(manifest.read_text().splitlines()[0])


async def test_readers_and_a_range_verify_through_rollups(tmp_path: Path) -> None:
    root, env, cwd = await _archive(tmp_path)
    rollups = sorted(p.name for p in (root / ROLLUP_PREFIX).rglob("*.json"))
    assert len(rollups) == 2, rollups

    # What the small objects hold, read without any rollup.
    small = sorted(
        (json.loads(raw)["cdr_id"], str(path.relative_to(root)))
        for path in (root / "manifests").rglob("*.jsonl")
        for raw in path.read_text().splitlines()
    )
    searched = await _search(env, cwd)
    assert searched == small
    assert len(searched) == len({cdr for cdr, _ in searched}) == 66  # each call once
    console, usable = await _console(root, tmp_path / "console.sqlite3")
    assert usable == [1, 1]  # both rollups read and used
    assert console == searched

    # A day inside the second rollup: verified through the rollup records.
    day = ["--since", "2021-02-05", "--until", "2021-02-06"]
    clean = await run_cli("verify", *day, env=env, cwd=cwd)
    assert clean.code == 0, clean.out + clean.err
    assert "RANGE through rollups" in clean.out
    assert "1 rollup(s) meeting the range" in clean.out
    assert "run a full verify to re-prove them" in clean.out

    manifest, line = _day_of(root, "2021-02-05")
    recording = root / line["object_key"]
    good = recording.read_bytes()
    assert await _get(env, cwd, line["cdr_id"], tmp_path / "cold1") == (good, 2)
    recording.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    damaged = await run_cli("verify", *day, env=env, cwd=cwd)
    assert damaged.code == 5, damaged.out + damaged.err
    assert line["object_key"] in damaged.out
    recording.write_bytes(good)

    text = manifest.read_text()
    manifest.write_text(text.replace(line["cdr_id"], line["cdr_id"][:-1] + "0", 1))
    altered = await run_cli("verify", *day, env=env, cwd=cwd)
    assert altered.code == 5, altered.out + altered.err
    assert "MANIFEST-ALTERED" in altered.out
    manifest.write_text(text)

    # The second rollup's lines altered: verify names it, the readers fall back to the
    # small objects and answer the same.
    data = next(p for p in (root / ROLLUP_PREFIX).rglob("000000000002.jsonl"))
    lines = data.read_bytes()
    data.write_bytes(lines.replace(b'"billsec":', b'"billsec": ', 1))
    bad = await run_cli("verify", *day, env=env, cwd=cwd)
    assert bad.code == 5, bad.out + bad.err
    assert any(w.startswith("ROLLUP") and "000000000002" in w for w in bad.out.splitlines())
    assert await _search(env, cwd) == searched
    assert await _get(env, cwd, line["cdr_id"], tmp_path / "cold2") == (good, 2)
    console, usable = await _console(root, tmp_path / "console2.sqlite3")
    assert usable == [1, 0]
    assert console == searched
