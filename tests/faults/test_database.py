"""The state database goes away under ``archiver run``: PostgreSQL stopped (fast and
immediate) and started again under two replicas, then an outage past the bound.

Real subprocesses of the CLI, the simulator on loopback, a local archive folder,
and a PostgreSQL cluster of this module's own (restarting the session's shared
one would disturb the other tests). Short outages here (``ARCHIVER_FAULT_OUTAGE``,
4 s: longer than the leader's lease, so leadership is lost and taken again); the
full-length one (60 s) is a bench: ``python -m tests.bench.state_outage``, which
runs these tests with a longer outage and reads their figures
(``ARCHIVER_BENCH_FIGURES``, a JSON Lines file).

On the code before issue 22 they fail: both replicas exited 1 at the first
failed statement (so /readyz never answered "state unreachable"), and a full
disk under the SQLite state ended the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from archiver.settings import StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from tests.support.cli import DAEMON, QUICK, archiver_env, run_cli, start_cli
from tests.support.pipeline import assert_exactly_once, read_archive
from tests.support.postgres import PostgresCluster, PostgresServer
from tests.support.seaweed import free_ports

# After the database is back, every recording is archived within this (the lag bound).
LAG_BOUND = 60.0
# How long the database stays away, seconds (the bench sets 60).
OUTAGE = float(os.environ.get("ARCHIVER_FAULT_OUTAGE", "4"))

TUNING = {
    **QUICK,
    **DAEMON,
    "ARCHIVER_POLL_INTERVAL": "0.3",
    "ARCHIVER_MANIFEST_INTERVAL": "0.3",
    "ARCHIVER_LEASE": "3",
    "ARCHIVER_LEADER_LEASE": "3",
    "ARCHIVER_GRACE": "3",
    "ARCHIVER_SERVICE__PROBE_INTERVAL": "1",
    # Each attempt on the state bounded to a few seconds, the outage to a minute.
    "ARCHIVER_STATE__TIMEOUT": "5",
    # Ridden out: well past the outage the test makes (the bound's own test sets 3).
    "ARCHIVER_STATE__OUTAGE": f"{max(60.0, 2 * OUTAGE + 30):g}",
}


def _figures(**figures: object) -> None:
    """Hand what a run measured to the bench, when one asks (never asserted on)."""
    path = os.environ.get("ARCHIVER_BENCH_FIGURES")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(figures) + "\n")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[PostgresCluster, PostgresServer]]:
    """A PostgreSQL cluster this module may stop and start, durable as a production one
    (an immediate stop must not lose a commit the server acknowledged)."""
    own = PostgresCluster(durable=True)
    server = own.start()
    try:
        yield own, server
    finally:
        own.stop()


@pytest.fixture
def database(cluster: tuple[PostgresCluster, PostgresServer]) -> str:
    """A fresh database on the module's cluster (its URL); the server is running."""
    own, server = cluster
    with contextlib.suppress(RuntimeError):
        own.pg_ctl("start")  # a test that failed may have left it stopped
    name = f"outage_{time.monotonic_ns()}"
    return server.create_database(name)


async def _until(predicate: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within:.0f}s: {what}")


class Replica:
    """One ``archiver run`` with its own service port; its stderr kept."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.err = b""
        self._drain = asyncio.create_task(self._read())

    async def _read(self) -> None:
        _, self.err = await self.proc.communicate()

    async def probe(self, path: str) -> tuple[int, str]:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http,
                http.get(self.url + path) as resp,
            ):
                return resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            return 0, ""

    async def stop(self) -> int:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self._drain), 60)
        except TimeoutError:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await self._drain
        assert self.proc.returncode is not None
        return self.proc.returncode


@contextlib.asynccontextmanager
async def _replicas(env: dict[str, str], cwd: Path, n: int) -> AsyncIterator[list[Replica]]:
    """``n`` replicas, the others started once the first leads (two starting at the
    same instant on a new archive race on their markers: a start-up matter apart
    from what is tested here)."""
    group: list[Replica] = []
    try:
        for port in free_ports(n):
            proc = await start_cli("run", env={**env, "ARCHIVER_SERVICE__PORT": str(port)}, cwd=cwd)
            group.append(Replica(proc, port))
            if len(group) == 1:
                await _until(lambda: _leading(group[0]), 60, "the first replica leading")
            else:
                await _until(lambda: _serving(group[-1]), 60, "a replica serving")
        yield group
    except AssertionError as failed:
        for replica in group:
            await replica.stop()
        logs = "\n".join(
            f"--- replica {i} (exit {r.proc.returncode}):\n{_messages(r.err)}"
            for i, r in enumerate(group)
        )
        raise AssertionError(f"{failed}\n{logs}") from None
    finally:
        for replica in group:
            await replica.stop()


async def _leading(replica: Replica) -> bool:
    """The replica leads: its start-up (marker, clean-up) is behind it."""
    assert replica.proc.returncode is None, "a replica exited at its start"
    status, body = await replica.probe("/metrics")
    return status == 200 and "\narchiver_leader 1.0" in body


async def _serving(replica: Replica) -> bool:
    """The replica answers /healthz: its state is open, its pipeline started."""
    assert replica.proc.returncode is None, "a replica exited at its start"
    return (await replica.probe("/healthz"))[0] == 200


def _messages(err: bytes) -> str:
    """A replica's stderr, the messages only (the JSON log lines are long)."""
    out = []
    for line in err.decode(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if "poll:" not in record.get("message", ""):
            out.append(
                f"{record.get('level')}: {record.get('message')} {record.get('exception', '')}"
            )
    return "\n".join(out[-60:])


def _sim() -> Simulator:
    now = datetime.now(UTC)
    return Simulator(
        SimConfig(
            seed=31,
            calls=8,
            recording_fraction=1.0,
            start=now - timedelta(minutes=40),
            span=timedelta(minutes=30),
            max_size=200_000,
            # Transfers stay in flight for a moment: the outage lands on claimed work.
            faults=Faults(drip_seconds=0.1),
        )
    )


async def _archived(sim: Simulator, storage: StorageSettings) -> bool:
    want = {c.sip_call_id for c in sim.calls if c.has_recording}
    return {line["sip_call_id"] for line in (await read_archive(storage)).lines} >= want


@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_two_replicas_ride_out_a_database_restart(
    mode: str,
    database: str,
    cluster: tuple[PostgresCluster, PostgresServer],
    tmp_path: Path,
) -> None:
    own, _ = cluster
    sim = _sim()
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        env = archiver_env(tmp_path, base=base, sim=sim, tuning=TUNING)
        env["ARCHIVER_STATE__URL"] = database
        async with _replicas(env, tmp_path, 2) as group:
            await _until(lambda: _archived(sim, storage), LAG_BOUND, "the first calls archived")
            sim.add_calls(6)
            stopped = time.monotonic()
            await asyncio.to_thread(own.pg_ctl, "stop", mode)
            try:
                # Not ready while the database is away, yet alive: nobody restarts it.
                async def not_ready() -> bool:
                    status, body = await group[0].probe("/readyz")
                    return status == 503 and '"state": "unreachable' in body

                await _until(not_ready, 30, "/readyz to say the state is unreachable")
                unready_after = time.monotonic() - stopped
                # Away for OUTAGE in all: alive throughout, nobody exits.
                while time.monotonic() - stopped < OUTAGE:
                    assert (await group[0].probe("/healthz"))[0] == 200
                    assert all(r.proc.returncode is None for r in group)
                    await asyncio.sleep(0.5)
            finally:
                await asyncio.to_thread(own.pg_ctl, "start")
            back = time.monotonic()
            sim.add_calls(3)
            await _until(lambda: _archived(sim, storage), LAG_BOUND, "every call archived")
            lag = time.monotonic() - back
            seen: list[str] = []

            async def ready() -> bool:
                status, body = await group[0].probe("/readyz")
                seen[:] = [body]
                return status == 200

            await _until(ready, 30, f"/readyz ready again (last: {seen})")
            assert all(r.proc.returncode is None for r in group), "a replica exited"
        codes = [r.proc.returncode for r in group]
        log = b"".join(r.err for r in group).decode(errors="replace")
    assert codes == [0, 0], log[-4000:]
    assert "unreachable" in log, log[-4000:]
    assert "answers again after" in log, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    assert lag < LAG_BOUND
    if OUTAGE > 2:  # past two thirds of the leader's lease (3 s): the role was lost
        assert "role leader not renewed in time" in log, log[-4000:]
    _figures(
        fault=f"PostgreSQL stopped ({mode}) under 2 replicas",
        outage_s=round(back - stopped, 1),
        unready_after_s=round(unready_after, 1),
        all_archived_after_s=round(lag, 1),
        calls=len(sim.calls),
    )
    await assert_exactly_once(sim, storage)
    verified = await run_cli("verify", env=env, cwd=tmp_path)
    assert verified.code == 0, verified.out + verified.err


@pytest.mark.timeout(120)
async def test_an_outage_past_the_bound_ends_run_with_one_line(
    database: str, cluster: tuple[PostgresCluster, PostgresServer], tmp_path: Path
) -> None:
    own, _ = cluster
    sim = _sim()
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        env = archiver_env(tmp_path, base=base, sim=sim, tuning=TUNING)
        env |= {"ARCHIVER_STATE__URL": database, "ARCHIVER_STATE__OUTAGE": "3"}
        async with _replicas(env, tmp_path, 1) as (replica,):
            await _until(lambda: _archived(sim, storage), LAG_BOUND, "the calls archived")
            await asyncio.to_thread(own.pg_ctl, "stop", "fast")
            try:
                await asyncio.wait_for(replica.proc.wait(), 60)
            finally:
                await asyncio.to_thread(own.pg_ctl, "start")
        err = replica.err.decode(errors="replace")
    assert replica.proc.returncode == 1, err
    assert "Traceback" not in err, err
    final = [line for line in err.splitlines() if "unreachable for more than" in line]
    assert len(final) == 1, err
    assert final[0] == err.strip().splitlines()[-1]
    assert "unreachable for more than 3 s" in final[0]
    # Nothing lost: what was archived before is in the archive and proven.
    verified = await run_cli("verify", env=env, cwd=tmp_path)
    assert verified.code == 0, verified.out + verified.err


# -- SQLite on a disk that fills up -----------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs of this test's own (mounting needs root: skipped, and said, without)."""
    where = tmp_path / "small-disk"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is made with a tmpfs mount, which needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount refused here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path) -> Path:
    """Fill the file system under ``folder`` to the last block; the filler's path."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 4096, 512, 1):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while True:
                    out.write(chunk)
    return filler


@pytest.mark.timeout(180)
async def test_a_full_disk_under_the_sqlite_state_pauses_the_run_until_space_returns(
    small_disk: Path, tmp_path: Path
) -> None:
    sim = _sim()
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        env = archiver_env(tmp_path, base=base, sim=sim, tuning=TUNING)
        env["ARCHIVER_STATE__URL"] = str(small_disk / "state.sqlite3")
        async with _replicas(env, tmp_path, 1) as (replica,):
            await _until(lambda: _archived(sim, storage), LAG_BOUND, "the first calls archived")
            filler = await asyncio.to_thread(_fill, small_disk)
            try:
                sim.add_calls(4)

                async def full() -> bool:
                    status, body = await replica.probe("/readyz")
                    return status == 503 and "SQLITE_FULL" in body

                await _until(full, 30, "/readyz to say the state's disk is full")
                assert (await replica.probe("/healthz"))[0] == 200
                assert replica.proc.returncode is None
            finally:
                filler.unlink()
            await _until(lambda: _archived(sim, storage), LAG_BOUND, "every call archived")
            assert replica.proc.returncode is None
        err = replica.err.decode(errors="replace")
    assert replica.proc.returncode == 0, err[-4000:]
    assert "Traceback" not in err, err[-4000:]
    assert "SQLITE_FULL" in err, err[-4000:]
    assert "answers again after" in err, err[-4000:]
    await assert_exactly_once(sim, storage)
    verified = await run_cli("verify", env=env, cwd=tmp_path)
    assert verified.code == 0, verified.out + verified.err


async def test_a_read_only_disk_under_the_sqlite_state_is_refused_in_one_line(
    small_disk: Path, tmp_path: Path
) -> None:
    """A state on a file system mounted read-only (a volume remounted after errors):
    ``run`` refuses at its start in one line naming the file, and writes nothing."""
    from archiver.state import SqliteState  # the state made before the disk turns read-only

    path = small_disk / "state.sqlite3"
    async with await SqliteState.open(path) as made:
        await made.progress.set_checkpoint("cdr_v2", datetime.now(UTC))
    before = {p.name: p.read_bytes() for p in small_disk.iterdir()}
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        sim = _sim()
        async with sim.serve() as base:
            env = archiver_env(tmp_path, base=base, sim=sim, tuning=TUNING)
            env["ARCHIVER_STATE__URL"] = str(path)
            result = await run_cli("run", env=env, cwd=tmp_path)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert result.code == 2, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    assert f"ARCHIVER_STATE__URL: cannot open {path}" in lines[0]
    assert {p.name: p.read_bytes() for p in small_disk.iterdir()} == before
