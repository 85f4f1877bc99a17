"""The generator of archives in the service's shape (tests/support/shape) writes archives the
product accepts: ``archiver verify`` proves every line, and ``archiver reconcile`` against
the simulator finds every call of a day archived. A few hundred calls; the big runs are
on demand (docs/development.md)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from archiver.settings import StorageSettings
from archiver.simulator import Simulator
from archiver.storage import open_store
from tests.support.cli import cli_env, run_cli, source_env
from tests.support.shape.generate import generate
from tests.support.shape.plan import START, Shape, sim_config

# Six days of 100 calls: two service writers, a backfilled outage day, leader changes.
SHAPE = Shape(calls=600, per_day=100, legacy=0)


async def _generated(root: Path, shape: Shape) -> dict:
    async with open_store(StorageSettings(url=str(root))) as store:
        return (await generate(store, shape, concurrency=8, progress=False)).summary()


async def test_a_generated_archive_verifies_and_reconciles(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    summary = await _generated(archive, SHAPE)
    assert summary["calls"] == summary["recordings"] == SHAPE.calls
    assert set(summary["writers"].values()) == {"service", "backfill"}
    assert len(summary["writers"]) == 3  # two service writers and a backfill
    assert summary["leader_changes"] >= 1
    assert 3 <= summary["lines_per_service_object"] <= 5
    assert summary["links"] == sum(summary["manifest_objects"].values())
    env = cli_env({"ARCHIVER_STORAGE__URL": str(archive), "ARCHIVER_OPERATOR": "ci"})
    verified = await run_cli("verify", env=env, cwd=tmp_path)
    assert verified.code == 0, verified.out + verified.err
    assert f"verified {SHAPE.calls} object(s)" in verified.out

    day = START + timedelta(days=2)  # the backfilled day, between two service days
    sim = Simulator(sim_config(SHAPE), window=(day - timedelta(days=1), day + timedelta(days=2)))
    async with sim.serve() as base:
        span = ["--since", str(day.date()), "--until", str((day + timedelta(days=1)).date())]
        env = {**env, **source_env(base, sim), "ARCHIVER_SOURCE__RATE_LIMIT": "0"}
        found = await run_cli("reconcile", *span, env=env, cwd=tmp_path)
    assert found.code == 0, found.out + found.err
    assert "MISSING" not in found.out
    total = re.search(r"^TOTAL .*cdrs=(\d+) with_recording=\d+ archived=(\d+)", found.out, re.M)
    assert total is not None, found.out
    assert int(total[1]) == int(total[2]) > SHAPE.per_day // 2  # the day's calls, all found


async def test_legacy_objects_are_sealed_and_only_their_lines_are_unproven(
    tmp_path: Path,
) -> None:
    shape = Shape(calls=300, per_day=300, legacy=150)
    archive = tmp_path / "archive"
    summary = await _generated(archive, shape)
    assert summary["manifest_objects"]["legacy"] == 2
    assert summary["sealed_legacy_objects"] == 2
    env = cli_env({"ARCHIVER_STORAGE__URL": str(archive), "ARCHIVER_OPERATOR": "ci"})
    verified = await run_cli("verify", env=env, cwd=tmp_path)
    # Exit 5 by the contract: legacy lines are checked on size only, never "proven".
    assert verified.code == 5, verified.out + verified.err
    assert "nothing found wrong" in verified.out
    assert "legacy lines 150" in verified.out


async def test_get_of_no_call_in_a_sealed_archive_is_not_found_until_a_legacy_object_goes(
    tmp_path: Path,
) -> None:
    # A seal's links name legacy objects (their own writer and number), not objects of the
    # seal's writer: a get that finds nothing must not call them missing (it did: exit 5).
    shape = Shape(calls=300, per_day=300, legacy=150)
    archive = tmp_path / "archive"
    await _generated(archive, shape)
    env = cli_env(
        {
            "ARCHIVER_STORAGE__URL": str(archive),
            "ARCHIVER_OPERATOR": "ci",
            "ARCHIVER_CONSOLE__INDEX_PATH": str(tmp_path / "index.sqlite3"),
        }
    )
    absent = await run_cli("get", "no-such-call", "--url", env=env, cwd=tmp_path)
    assert absent.code == 4, absent.out + absent.err
    assert "no archived call with id 'no-such-call'" in absent.err
    legacy = sorted(
        p for p in (archive / "manifests").rglob("*.jsonl") if p.name.split("-")[1][0] != "w"
    )
    assert legacy, "the shape has legacy objects"
    legacy[0].unlink()
    gone = await run_cli("get", "no-such-call", "--url", env=env, cwd=tmp_path)
    assert gone.code == 5, gone.out + gone.err
    assert "is missing" in gone.err
