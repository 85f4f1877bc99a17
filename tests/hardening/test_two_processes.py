"""Two processes on one archive: ``run`` and ``backfill`` sharing a state share its
work; a second state on the same storage is refused before it writes anything."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.errors import ConfigError
from archiver.pipeline.storage_binding import PREFIX, StorageBinding
from archiver.settings import StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.storage import open_store
from tests.support.cli import DAEMON, QUICK, archiver_env, start_cli
from tests.support.pipeline import assert_exactly_once

# Recordings above 64 KiB go up as uploads (a .partial file) and arrive in 64 KiB
# pieces 0.7 s apart: uploads are in flight when the second process starts.
DRIP = Faults(drip_seconds=0.7)
TUNING = {
    **QUICK,
    **DAEMON,
    "ARCHIVER_POLL_INTERVAL": "0.5",
    "ARCHIVER_SERVICE__ENABLED": "false",
    "ARCHIVER_STORAGE__BUFFER_BOUND": "65536",
}


def _count(state: Path, where: str) -> int:
    """Jobs of the state database matching ``where``, read as an operator would."""
    if not state.exists():
        return 0
    conn = sqlite3.connect(state)
    try:
        return int(conn.execute(f"SELECT count(*) FROM calls WHERE {where}").fetchone()[0])  # noqa: S608
    except sqlite3.OperationalError:
        return 0  # not created yet
    finally:
        conn.close()


def _in_flight(state: Path) -> int:
    return _count(state, "state = 'transferring'")


def _all_archived(state: Path) -> bool:
    return _count(state, "state = 'archived'") == 16 == _count(state, "1")


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def _sim() -> Simulator:
    now = datetime.now(UTC).replace(microsecond=0)
    return Simulator(
        SimConfig(
            seed=21,
            calls=16,
            start=now - timedelta(minutes=50),
            span=timedelta(minutes=40),
            recording_fraction=1.0,
            max_size=400_000,
            faults=DRIP,
        )
    )


def _partials(root: Path) -> list[Path]:
    return list(root.rglob("*.partial")) if root.exists() else []


@pytest.mark.slow
async def test_run_and_backfill_on_one_state_archive_each_recording_once(tmp_path: Path) -> None:
    sim = _sim()
    state = tmp_path / "state.sqlite3"
    archive = tmp_path / "archive"
    since = (sim.config.start - timedelta(minutes=1)).isoformat()
    until = (sim.config.start + sim.config.span + timedelta(minutes=1)).isoformat()
    async with sim.serve() as base:
        env = archiver_env(tmp_path, base=base, sim=sim, tuning=TUNING)
        backfill = await start_cli(
            "backfill", "--since", since, "--until", until, env=env, cwd=tmp_path
        )
        # The daemon starts while backfill has transfers and uploads in flight.
        await _until(
            lambda: _in_flight(state) > 0 and bool(_partials(archive)),
            60,
            "backfill to have an upload in flight",
        )
        run = await start_cli("run", env=env, cwd=tmp_path)
        try:
            out, err = await asyncio.wait_for(backfill.communicate(), 300)
            assert backfill.returncode == 0, err.decode()[-2000:]
            # run archives whatever backfill left to it, then stops cleanly.
            await _until(lambda: _all_archived(state), 120, "every recording archived")
        finally:
            code, run_err = await _stop(run)
    assert code == 0, run_err[-2000:]
    await assert_exactly_once(sim, StorageSettings(url=str(archive)))
    # Each recording was fetched once: neither process took the other's transfers
    # or removed an upload under the other.
    fetched = {c.cdr_id: sim.stats[f"rec:{c.cdr_id}"] for c in sim.calls}
    assert set(fetched.values()) == {1}, fetched
    assert sum(1 for c in sim.calls if c.size > 65536) >= 8, "too few uploads: proves less"
    assert _partials(archive) == []


@pytest.mark.slow
async def test_a_second_state_on_the_same_storage_is_refused(tmp_path: Path) -> None:
    sim = _sim()
    archive = tmp_path / "archive"
    since = (sim.config.start - timedelta(minutes=1)).isoformat()
    until = (sim.config.start + sim.config.span + timedelta(minutes=1)).isoformat()
    async with sim.serve() as base:
        env = archiver_env(tmp_path, base=base, sim=sim, tuning=TUNING)
        run = await start_cli("run", env=env, cwd=tmp_path)
        try:
            await _until(
                lambda: any((archive / PREFIX).glob("*.json")), 60, "run's marker in the storage"
            )
            other = dict(env, ARCHIVER_STATE__URL=str(tmp_path / "other.sqlite3"))
            refused = await start_cli(
                "backfill", "--since", since, "--until", until, env=other, cwd=tmp_path
            )
            out, err = await asyncio.wait_for(refused.communicate(), 60)
            assert refused.returncode == 2, err.decode()
            lines = err.decode().strip().splitlines()
            assert len(lines) == 1, lines
            assert "another archiver with a different state database" in lines[0]
            await _until(lambda: _all_archived(tmp_path / "state.sqlite3"), 120, "run's work")
        finally:
            code, run_err = await _stop(run)
    assert code == 0, run_err[-2000:]
    # Only run's state wrote: every recording in the manifest once.
    await assert_exactly_once(sim, StorageSettings(url=str(archive)))
    # Its marker went with it: the storage is free for another state now.
    assert list((archive / PREFIX).glob("*.json")) == []


@pytest.mark.parametrize("kind", ["local", "s3"])
async def test_two_states_starting_at_once_one_wins(
    kind: str, tmp_path: Path, make_bucket, s3_settings
) -> None:
    if kind == "s3":
        settings = s3_settings(await make_bucket())
    else:
        settings = StorageSettings(url=str(tmp_path / "archive"))
    now = datetime.now(UTC)
    lease = timedelta(seconds=60)
    async with open_store(settings) as store:
        bindings = [StorageBinding(store, f"state{i}", f"owner{i}", lease) for i in range(4)]
        outcomes = await asyncio.gather(*(b.acquire(now) for b in bindings), return_exceptions=True)
        # At most one goes on (all may yield at once: then a retry goes on alone).
        won = [o for o in outcomes if o is None]
        assert len(won) <= 1, outcomes
        assert all(isinstance(o, ConfigError) for o in outcomes if o is not None)
        if not won:
            await bindings[0].acquire(now)
            outcomes[0] = None
        for loser in (b for b, o in zip(bindings, outcomes, strict=True) if o is not None):
            with pytest.raises(ConfigError):
                await loser.acquire(now)
        # The same state may start a second process beside the winner.
        winner = bindings[outcomes.index(None)]
        twin = StorageBinding(store, winner._state_id, "twin", lease)
        await twin.acquire(now)
        # A dead process's marker lapses after the lease: another state may start then.
        late = StorageBinding(store, "state-late", "owner-late", lease)
        with pytest.raises(ConfigError):
            await late.acquire(now + lease / 2)
        await late.acquire(now + lease * 3)
        markers = [o.key async for o in store.list(PREFIX)]
        assert len(markers) == 1
        assert "state-late" in markers[0]
