"""Exactly once whatever happened to the state database (issue 21): the archive is the record.

``archiver backfill``, the state file deleted, the same backfill again; ``archiver demo``
twice in one folder: each recording once in the storage and one call line in the manifest,
the recordings already archived adopted from the archive (not downloaded, not uploaded), and
the storage requests of the run with the new state within the budget (1.05 per recording).
On a local folder and on SeaweedFS, the CLI as a subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from tests.support.cli import QUICK, archiver_env, cli_env, run_cli, s3_storage_env
from tests.support.faultproxy import FaultProxy
from tests.support.pipeline import assert_exactly_once, read_archive

SINCE = "2021-02-17 08:00"
UNTIL = "2021-02-17 14:00"
BUDGET = 1.05


def _state_files(path: Path) -> list[Path]:
    return [path.parent / (path.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]


@pytest.mark.parametrize("where", ["local", "s3"])
async def test_a_backfill_with_the_state_lost_adopts_what_the_archive_holds(
    where: str, tmp_path: Path, make_bucket, s3_settings, seaweed
) -> None:
    sim = Simulator(
        SimConfig(seed=2121, calls=40, recording_fraction=0.9, min_size=2_000, max_size=20_000)
    )
    proxy = FaultProxy(seaweed.endpoint_url)
    async with sim.serve() as base, proxy.serve() as endpoint:
        if where == "s3":
            storage = s3_settings(await make_bucket())
            storage_env = s3_storage_env(storage, seaweed, endpoint)
        else:
            storage = StorageSettings(url=str(tmp_path / "archive"))
            storage_env = {"ARCHIVER_STORAGE__URL": storage.url}
        env = archiver_env(tmp_path, base=base, sim=sim, storage=storage_env, tuning=QUICK)
        first = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
        assert first.code == 0, first.out + first.err
        recordings = sum(1 for c in sim.calls if c.has_recording)
        assert len((await read_archive(storage)).lines) == recordings

        # A new machine, a deleted or reset state file: the archive is all there is.
        # (A new machine has no local index of the manifests either.)
        for name in ("state.sqlite3", "archiver-console.sqlite3"):
            for path in _state_files(tmp_path / name):
                path.unlink(missing_ok=True)
        downloads = sim.stats["recording_requests"]
        proxy.stats.clear()
        second = await run_cli(
            "backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path
        )
        assert second.code == 0, second.out + second.err
        requests = proxy.stats["requests"]
        ops = {k: v for k, v in proxy.stats.items() if k.startswith("op:")}
        verified = await run_cli("verify", env=env, cwd=tmp_path)
        assert verified.code == 0, verified.out + verified.err

    await assert_exactly_once(sim, storage)
    assert f"{recordings} already in the archive" in second.out, second.out
    assert sim.stats["recording_requests"] == downloads, "a recording was downloaded again"
    if where == "s3":
        print(f"\nthe run with a new state: {requests} storage requests: {ops}")
        assert requests <= BUDGET * recordings, f"{requests} requests for {recordings}: {ops}"


@pytest.mark.parametrize("where", ["local", "s3"])
async def test_the_demo_twice_keeps_one_call_line_per_recording(
    where: str, tmp_path: Path, make_bucket, s3_settings, seaweed
) -> None:
    if where == "s3":
        storage = s3_settings(await make_bucket())
        storage_env = s3_storage_env(storage, seaweed)
    else:
        storage = StorageSettings(url=str(tmp_path / "archive"))
        storage_env = {}  # the demo's default: ./archive
    env = cli_env({"ARCHIVER_MANIFEST_INTERVAL": "0.2", **storage_env})
    for _ in range(2):
        done = await run_cli("demo", "--calls", "20", env=env, cwd=tmp_path)
        assert done.code == 0, done.out + done.err
    lines = (await read_archive(storage)).lines
    calls = {(line["provider"], line["cdr_id"]) for line in lines}
    assert len(lines) == len(calls), f"{len(lines)} call lines for {len(calls)} calls"
    assert f"{len(lines)} already in the archive" in done.out, done.out
    verified = await run_cli("verify", env=env, cwd=tmp_path)
    assert verified.code == 0, verified.out + verified.err
