"""``archiver run`` as a subprocess against the simulated provider, while calls keep arriving."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from archiver.settings import StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from tests.support.cli import DAEMON, archiver_env, s3_storage_env, start_cli, stderr_until
from tests.support.faultproxy import FaultProxy
from tests.support.pipeline import assert_exactly_once, read_archive
from tests.support.seaweed import free_ports

# A daemon polling every 0.5 s, quick to retry, probing its readiness every 0.3 s.
TUNING = {
    **DAEMON,
    "ARCHIVER_SOURCE__RATE_LIMIT": "0",
    "ARCHIVER_POLL_INTERVAL": "0.5",
    "ARCHIVER_MANIFEST_INTERVAL": "0.3",
    "ARCHIVER_RETRY__NOT_READY_INITIAL": "0.3",
    "ARCHIVER_RETRY__NOT_READY_MAXIMUM": "0.6",
    "ARCHIVER_RETRY__INITIAL": "0.1",
    "ARCHIVER_RETRY__MAXIMUM": "0.3",
    "ARCHIVER_SERVICE__PROBE_INTERVAL": "0.3",
    "ARCHIVER_SERVICE__READY_TIMEOUT": "1.5",
    "ARCHIVER_GRACE": "5",
}


def _env(sim: Simulator, base: str, tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    return archiver_env(
        tmp_path, base=base, sim=sim, tuning=TUNING, ARCHIVER_SERVICE__PORT=str(port), **extra
    )


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


async def test_the_daemon_archives_arriving_late_and_not_ready_calls_exactly_once(tmp_path):
    now = datetime.now(UTC)
    sim = Simulator(
        SimConfig(
            seed=12,
            calls=8,
            start=now - timedelta(minutes=50),
            span=timedelta(minutes=40),
            max_size=200_000,
            faults=Faults(not_ready_fraction=0.3, not_ready_seconds=1.5),
        )
    )
    storage = StorageSettings(url=str(tmp_path / "archive"))
    port = free_ports(1)[0]
    service = f"http://127.0.0.1:{port}"
    async with sim.serve() as base:
        proc = await start_cli("run", env=_env(sim, base, tmp_path, port), cwd=tmp_path)
        try:

            async def archived_all() -> bool:
                want = {c.sip_call_id for c in sim.calls if c.has_recording}
                lines = (await read_archive(storage)).lines
                return {line["sip_call_id"] for line in lines} >= want

            await _wait_for(archived_all, 30, "the first calls")
            # New calls arrive now, and late CDRs appear inside the lookback window,
            # behind the checkpoint the daemon has already passed.
            sim.add_calls(4)
            sim.add_calls(3, start=datetime.now(UTC) - timedelta(minutes=20))
            await _wait_for(archived_all, 30, "the new and the late calls")
            status, body = await _get(f"{service}/metrics")
            assert status == 200
            contents = await read_archive(storage)
            assert _metric(body, "archiver_recordings_archived_total") == len(contents.lines)
            assert "archiver_recordings_failed_total{" not in body  # no failure of any reason
            assert sim.config.token not in body  # no secret in the metrics
            assert "signature" not in body
            assert (
                _metric(body, "archiver_last_successful_poll_timestamp_seconds") > now.timestamp()
            )
            assert (await _get(f"{service}/healthz"))[0] == 200
            assert (await _get(f"{service}/readyz"))[0] == 200
            assert sim.stats["fault:not_ready"] > 0, "no recording was late: the test proves less"
        finally:
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 15)
            stopped_in = time.monotonic() - t0
    assert proc.returncode == 0, err.decode()[-2000:]
    assert stopped_in < 5 + 2
    await assert_exactly_once(sim, storage)
    # Log lines are JSON when not on a terminal; no secret in them.
    assert '"level": "info"' in err.decode()
    assert sim.config.token not in err.decode() + out.decode()


async def test_readyz_follows_the_storage_and_the_daemon_outlives_an_outage(
    tmp_path, make_bucket, s3_env, s3_settings, seaweed
):
    bucket = await make_bucket()
    proxy = FaultProxy(seaweed.endpoint_url, requests=False)
    sim = Simulator(
        SimConfig(
            seed=1,
            calls=2,
            recording_fraction=1.0,
            start=datetime.now(UTC) - timedelta(minutes=5),
            span=timedelta(minutes=3),
        )
    )
    port = free_ports(1)[0]
    service = f"http://127.0.0.1:{port}"
    async with proxy.serve() as endpoint, sim.serve() as base:
        env = _env(
            sim,
            base,
            tmp_path,
            port,
            **s3_storage_env(
                StorageSettings(url=f"s3://{bucket}/p"),
                s3_env,
                endpoint=endpoint,
            ),
        )
        proc = await start_cli("run", env=env, cwd=tmp_path)
        lines: list[str] = []

        async def collect() -> None:
            assert proc.stderr is not None
            while line := await proc.stderr.readline():
                lines.append(line.decode())

        reader = asyncio.create_task(collect())
        try:

            async def ready() -> bool:
                try:
                    return (await _get(f"{service}/readyz"))[0] == 200
                except aiohttp.ClientError:
                    return False

            async def unready() -> bool:
                return (await _get(f"{service}/readyz"))[0] == 503

            await _wait_for(ready, 20, "ready")
            await proxy.add_toxic("down", "reset")
            await _wait_for(unready, 20, "unready while the storage is away")
            status, body = await _get(f"{service}/readyz")
            assert '"storage"' in body
            # Calls keep arriving while the storage is away: the daemon must
            # survive the failed transfers and archive them once it is back.
            sim.add_calls(3)

            async def paused() -> bool:
                return any("storage unavailable, pausing" in line for line in lines)

            # Past the storage client's own retries: the daemon's fallback must act.
            await _wait_for(paused, 60, "a transfer failing on the storage")
            assert proc.returncode is None, "the daemon died with the storage"
            assert (await _get(f"{service}/healthz"))[0] == 200  # alive, just not ready
            await proxy.remove_toxic("down")
            await _wait_for(ready, 30, "ready again")
            storage = s3_settings(bucket, "p")

            async def archived_all() -> bool:
                want = {c.sip_call_id for c in sim.calls if c.has_recording}
                lines = (await read_archive(storage)).lines
                return {line["sip_call_id"] for line in lines} >= want

            await _wait_for(archived_all, 40, "the calls that arrived during the outage")
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have died
                proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
            await reader
        assert proc.returncode == 0, "".join(lines)[-2000:]
        await assert_exactly_once(sim, s3_settings(bucket, "p"))


async def test_a_second_signal_stops_at_once_without_half_objects(tmp_path):
    sim = Simulator(
        SimConfig(
            seed=3,
            calls=20,
            start=datetime.now(UTC) - timedelta(minutes=30),
            span=timedelta(minutes=20),
            max_size=400_000,
            # Every answer (API page, recording) waits 5 s: the listing lands at
            # about 5 s and its transfers stay in flight until about 10 s.
            faults=Faults(slow=1.0, slow_seconds=5.0),
        )
    )
    port = free_ports(1)[0]
    async with sim.serve() as base:
        env = _env(sim, base, tmp_path, port, ARCHIVER_GRACE="30", ARCHIVER_CONCURRENCY="4")
        proc = await start_cli("run", env=env, cwd=tmp_path)

        async def in_flight() -> bool:
            try:
                status, body = await _get(f"http://127.0.0.1:{port}/metrics")
            except aiohttp.ClientError:
                return False
            return status == 200 and _metric(body, "archiver_transfers_in_flight") >= 1

        await _wait_for(in_flight, 30, "transfers in flight")
        proc.send_signal(signal.SIGTERM)  # graceful: would wait up to 30 s for the transfers
        said = await stderr_until(proc, "stopping: no new work", 15)
        proc.send_signal(signal.SIGTERM)  # at once
        _, rest = await asyncio.wait_for(proc.communicate(), 15)
        err = said + rest
    assert proc.returncode == 130, err.decode()[-2000:]
    assert re.search(r"stopped at once: [1-9]\d* transfer\(s\) interrupted", err.decode())
    # No half object is visible: every recording file has exactly its bytes.
    by_id = {c.sip_call_id: c for c in sim.calls}
    archive = tmp_path / "archive"
    visible = [p for p in archive.rglob("*.wav")] + [p for p in archive.rglob("*.mp3")]
    for path in visible:
        call = by_id[path.stem]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == call.sha256(), path
    # The next run finishes the work, exactly once, and clears any temporary file.
    async with sim.serve() as base2:
        sim.set_faults(Faults())
        env = _env(sim, base2, tmp_path, free_ports(1)[0])
        proc = await start_cli("run", env=env, cwd=tmp_path)
        storage = StorageSettings(url=str(archive))

        async def archived_all() -> bool:
            want = {c.sip_call_id for c in sim.calls if c.has_recording}
            return {line["sip_call_id"] for line in (await read_archive(storage)).lines} >= want

        try:
            await _wait_for(archived_all, 40, "the rest after the restart")
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have exited already
                proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 0, err.decode()[-3000:]
    await assert_exactly_once(sim, storage)
    assert [p for p in archive.rglob("*") if ".partial" in p.name] == []
