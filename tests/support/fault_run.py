"""``archiver run`` as a subprocess under one injected fault, and what it must do.

Every scenario (tests/support/fault_scenarios.py) goes the same way:

1. the run starts against the simulator and a storage (SeaweedFS behind the
   fault proxy, or a local folder) and archives the first calls;
2. the fault begins, and new calls arrive while it lasts;
3. the fault shows (readiness false, and what the scenario asks) and lasts
   ``outage`` seconds in all;
4. the fault ends: every recording must be archived within ``RECOVERY_BOUND``
   seconds, readiness must come back, and the run must never have exited;
5. SIGTERM (exit 0), ``archiver verify`` (exit 0), and the archive holds each
   recording exactly once, with the right bytes.

The short outages (``OUTAGE``, a few seconds) run in CI; the bench
(tests/bench/faults.py) runs the same scenarios with 40-second outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from tests.support.cli import DAEMON, archiver_env, run_cli, start_cli
from tests.support.pipeline import assert_exactly_once, read_archive
from tests.support.seaweed import free_ports

# CI's outage, seconds (the bench sets 40).
OUTAGE = float(os.environ.get("ARCHIVER_FAULT_OUTAGE", "4"))
# Seconds after the fault ends within which every recording must be archived:
# the issue allows a minute of lag after a 40-second hang; with the tests'
# short timeouts, half of it.
RECOVERY_BOUND = 30.0
# Generous bounds on waiting for what must happen (they are deadlines, not timings).
SHOWS_WITHIN = 30.0

# A daemon polling every 0.5 s and probing its storage every 0.5 s, with short
# network timeouts on both sides so that a hung endpoint costs seconds: the
# production defaults (10 s connect, 30 s read) scale the same way.
TUNING = {
    **DAEMON,
    "ARCHIVER_SOURCE__RATE_LIMIT": "0",
    "ARCHIVER_SOURCE__CONNECT_TIMEOUT": "2",
    "ARCHIVER_SOURCE__READ_TIMEOUT": "2",
    "ARCHIVER_SOURCE__REQUEST_TIMEOUT": "4",
    "ARCHIVER_SOURCE__MAX_BACKOFF": "0.5",
    "ARCHIVER_STORAGE__CONNECT_TIMEOUT": "2",
    "ARCHIVER_STORAGE__READ_TIMEOUT": "2",
    "ARCHIVER_STORAGE__MIN_THROUGHPUT": str(4 * 1024 * 1024),
    "ARCHIVER_POLL_INTERVAL": "0.5",
    "ARCHIVER_MANIFEST_INTERVAL": "0.3",
    "ARCHIVER_RETRY__INITIAL": "0.1",
    "ARCHIVER_RETRY__MAXIMUM": "0.5",
    "ARCHIVER_RETRY__NOT_READY_INITIAL": "0.3",
    "ARCHIVER_RETRY__NOT_READY_MAXIMUM": "0.6",
    "ARCHIVER_SERVICE__PROBE_INTERVAL": "0.5",
    # The source counts as unreached 3 s after its last listing; the storage
    # follows its probe whatever this is (the production default is 180 s).
    "ARCHIVER_SERVICE__READY_TIMEOUT": "3",
    "ARCHIVER_LAG_WARNING": "1",
    "ARCHIVER_GRACE": "5",
}


@dataclass
class Figures:
    """What one scenario measured (the bench's figures)."""

    scenario: str
    outage: float
    recovered_in: float = 0.0
    ready_again_in: float = 0.0
    archived: int = 0
    notes: list[str] = field(default_factory=list)


class FaultRun:
    """A running ``archiver run``: its log lines, its endpoints, its archive."""

    def __init__(
        self, sim: Simulator, proc: asyncio.subprocess.Process, service: str, env: dict[str, str]
    ) -> None:
        self.sim = sim
        self.proc = proc
        self.service = service
        self.env = env
        self.lines: list[str] = []
        # What each wait waited for, and how long (printed by a failing test's report).
        self.waits: list[str] = []

    async def collect(self) -> None:
        """Read the run's stderr (its log lines) until it ends."""
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode(errors="replace"))

    def log(self) -> str:
        """The log so far."""
        return "".join(self.lines)

    def saw(self, pattern: str) -> bool:
        """A log line matches ``pattern`` (a regular expression)."""
        return any(re.search(pattern, line) for line in self.lines)

    async def get(self, path: str) -> tuple[int, str]:
        """GET one of the run's endpoints: status and body (599 when it does not answer)."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s,
                s.get(self.service + path) as r,
            ):
                return r.status, await r.text()
        except (aiohttp.ClientError, TimeoutError):
            return 599, ""

    async def metric(self, name: str) -> float | None:
        """The value of an unlabelled metric on /metrics (None when absent)."""
        status, text = await self.get("/metrics")
        match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
        return float(match.group(1)) if status == 200 and match else None

    async def ready(self) -> bool:
        """/readyz answers 200."""
        return (await self.get("/readyz"))[0] == 200

    async def unready(self) -> bool:
        """/readyz answers 503."""
        return (await self.get("/readyz"))[0] == 503

    def alive(self) -> bool:
        """The run has not exited."""
        return self.proc.returncode is None

    async def wait(
        self, predicate: Callable[[], Awaitable[bool]], within: float, what: str
    ) -> float:
        """Poll ``predicate`` until true; seconds it took. Fails past ``within``
        or as soon as the run exits."""
        started = time.monotonic()
        while True:
            if await predicate():
                took = time.monotonic() - started
                self.waits.append(f"{what}: {took:.1f}s")
                return took
            assert self.alive(), f"the run exited while waiting for {what}:\n{self.log()[-3000:]}"
            if time.monotonic() - started > within:
                raise AssertionError(f"not {what} within {within:g}s:\n{self.log()[-3000:]}")
            await asyncio.sleep(0.2)

    async def archived_ids(self, storage: StorageSettings) -> set[str]:
        """The sip_call_ids the archive's manifest lists."""
        try:
            lines = (await read_archive(storage)).lines
        except Exception:  # noqa: BLE001 - the manifest is being written: ask again
            return set()
        return {line["sip_call_id"] for line in lines}

    def expected_ids(self) -> set[str]:
        """The simulated calls that have a recording."""
        return {c.sip_call_id for c in self.sim.calls if c.has_recording}

    async def all_archived(self, storage: StorageSettings) -> bool:
        """Every simulated recording is in the manifest."""
        return await self.archived_ids(storage) >= self.expected_ids()


def make_sim(*, calls: int = 2, size: int | None = None, seed: int = 1) -> Simulator:
    """A simulator with ``calls`` calls that began minutes ago, each with a recording."""
    return Simulator(
        SimConfig(
            seed=seed,
            calls=calls,
            recording_fraction=1.0,
            start=datetime.now(UTC) - timedelta(minutes=5),
            span=timedelta(minutes=3),
            fixed_size=size,
        )
    )


@contextlib.asynccontextmanager
async def fault_run(
    sim: Simulator, base: str, tmp_path: Path, storage: Mapping[str, str], **extra: str
) -> AsyncIterator[FaultRun]:
    """``archiver run`` with the fault tests' tuning; stopped with SIGTERM at the end
    of the block, where it must exit 0."""
    port = free_ports(1)[0]
    env = archiver_env(
        tmp_path,
        base=base,
        sim=sim,
        storage=storage,
        tuning=TUNING,
        ARCHIVER_SERVICE__PORT=str(port),
        **extra,
    )
    proc = await start_cli("run", env=env, cwd=tmp_path)
    run = FaultRun(sim, proc, f"http://127.0.0.1:{port}", env)
    reader = asyncio.create_task(run.collect())
    try:
        yield run
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        await reader
    assert proc.returncode == 0, f"run exited {proc.returncode}:\n{run.log()[-3000:]}"


async def hold(fault_started: float, outage: float) -> None:
    """Let the fault last ``outage`` seconds from its start: the fault's length is
    the scenario's parameter, not a wait for another process."""
    remaining = fault_started + outage - time.monotonic()
    if remaining > 0:
        await asyncio.sleep(remaining)


async def recover_and_check(
    run: FaultRun, storage: StorageSettings, figures: Figures, fault_ended: float
) -> None:
    """After the fault: everything archived within the bound, ready again, alive."""
    await run.wait(lambda: run.all_archived(storage), RECOVERY_BOUND, "every recording archived")
    figures.recovered_in = time.monotonic() - fault_ended
    await run.wait(run.ready, RECOVERY_BOUND, "ready again")
    figures.ready_again_in = time.monotonic() - fault_ended
    figures.archived = len(run.expected_ids())
    figures.notes.extend(run.waits)


async def verify_exactly_once(run: FaultRun, storage: StorageSettings, tmp_path: Path) -> None:
    """``archiver verify`` exits 0, and each recording is archived once, intact."""
    result = await run_cli("verify", env=run.env, cwd=tmp_path, timeout=120)
    assert result.code == 0, result.out[-2000:] + result.err[-2000:]
    await assert_exactly_once(run.sim, storage)
