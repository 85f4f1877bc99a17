"""Several ``archiver run`` replicas on one state, killed at random moments; two
``archiver backfill`` processes at once on one state.

The replicas are real subprocesses of the CLI, the provider the simulator on
loopback, the storage SeaweedFS. Whatever the kills, every recording ends in the
storage once and in the manifest once, and ``archiver verify`` proves the archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.settings import StateSettings, StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.state import open_state_store
from tests.support.cli import DAEMON, QUICK, archiver_env, run_cli, s3_storage_env, start_cli
from tests.support.pipeline import assert_exactly_once, read_archive

pytestmark = pytest.mark.slow

# Short leases and quick polls: a dead replica's claims and its leader role pass
# to another within seconds.
TUNING = {
    **QUICK,
    **DAEMON,
    "ARCHIVER_POLL_INTERVAL": "0.3",
    "ARCHIVER_MANIFEST_INTERVAL": "0.3",
    "ARCHIVER_LEASE": "3",
    "ARCHIVER_LEADER_LEASE": "3",
    "ARCHIVER_GRACE": "3",
    "ARCHIVER_SERVICE__ENABLED": "false",
}
# How long the replicas get to archive everything once the kills are over.
SETTLE_TIMEOUT = 90.0


@pytest.fixture(params=["postgres", "sqlite"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared state: a fresh PostgreSQL database (replicas on several machines), or
    one SQLite file (processes of one machine may share it)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "state.sqlite3")


async def _wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Replicas:
    """``archiver run`` processes by slot: started, SIGKILLed, frozen, restarted, stopped."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self._env = env
        self._cwd = cwd
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.logs: list[bytes] = []
        self._drains: list[asyncio.Task[None]] = []

    async def start(self, slot: int) -> None:
        proc = await start_cli("run", env=self._env, cwd=self._cwd)
        self.procs[slot] = proc
        # Drain the pipes so a chatty replica never blocks on a full one.
        self._drains.append(asyncio.create_task(self._drain(proc)))

    async def _drain(self, proc: asyncio.subprocess.Process) -> None:
        _, err = await proc.communicate()
        self.logs.append(err)

    async def kill(self, slot: int) -> None:
        proc = self.procs.pop(slot)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    def signal(self, slot: int, sig: signal.Signals) -> None:
        os.killpg(self.procs[slot].pid, sig)

    async def stop_all(self) -> dict[int, int]:
        """SIGTERM every live replica; their exit codes."""
        codes: dict[int, int] = {}
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for slot, proc in list(self.procs.items()):
            try:
                codes[slot] = await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                codes[slot] = await proc.wait()
        self.procs.clear()
        await asyncio.gather(*self._drains)
        return codes

    @property
    def log(self) -> str:
        """Every replica's stderr, the killed ones' included."""
        return b"\n".join(self.logs).decode(errors="replace")


def _slots(owners: list[str], group: Replicas) -> list[int]:
    """The slots of the live replicas among ``owners`` (tokens ``<run>-<pid>@<host>``)."""
    pids = {int(owner.partition("@")[0].rpartition("-")[2]) for owner in owners}
    return sorted(slot for slot, proc in group.procs.items() if proc.pid in pids)


async def _holding(state_url: str, group: Replicas) -> list[int]:
    """The replicas that hold claimed recordings now (read from the state)."""
    async with open_state_store(StateSettings(url=state_url)) as state:
        return _slots(await state.leases.lease_holders(datetime.now(UTC)), group)


async def _leading(state_url: str, group: Replicas) -> list[int]:
    """The live replica holding the leader role now, if any (read from the state)."""
    async with open_state_store(StateSettings(url=state_url)) as state:
        holder = await state.roles.role_holder("leader", datetime.now(UTC))
    return _slots([holder] if holder else [], group)


async def _victim(
    rng: random.Random, state_url: str, group: Replicas, pick: Callable[..., Awaitable[list[int]]]
) -> int:
    """A replica drawn at random among those ``pick`` names (waited for)."""
    found: list[int] = []

    async def someone() -> bool:
        found[:] = await pick(state_url, group)
        return bool(found)

    await _wait_for(someone, 30, f"a replica to kill ({pick.__doc__})")
    return rng.choice(found)


async def _freeze_the_leader(rng: random.Random, state_url: str, group: Replicas) -> None:
    """SIGSTOP the leader (a paused VM, a long GC) until another replica leads, then
    SIGCONT: it wakes up with its role and its claims' leases gone, mid-work."""
    frozen = await _victim(rng, state_url, group, _leading)
    group.signal(frozen, signal.SIGSTOP)
    try:

        async def another_leads() -> bool:
            return (await _leading(state_url, group)) not in ([], [frozen])

        await _wait_for(another_leads, 30, "another leader while the leader is frozen")
    finally:
        group.signal(frozen, signal.SIGCONT)


async def _bucket_env(make_bucket, s3_settings, seaweed) -> tuple[StorageSettings, dict[str, str]]:
    bucket = await make_bucket()
    storage = s3_settings(bucket, "replicas")
    return storage, s3_storage_env(storage, seaweed)


async def _all_in_manifest(sim: Simulator, storage: StorageSettings) -> bool:
    want = {c.sip_call_id for c in sim.calls if c.has_recording}
    return {line["sip_call_id"] for line in (await read_archive(storage)).lines} >= want


async def _once_and_verified(
    sim: Simulator, storage: StorageSettings, env: dict[str, str], cwd: Path
) -> str:
    """Every recording once in the storage and the manifest, and verify exits 0."""
    await assert_exactly_once(sim, storage)
    verified = await run_cli("verify", env=env, cwd=cwd)
    assert verified.code == 0, verified.out + verified.err
    assert "all intact" in verified.out
    return verified.out


# Three replicas on PostgreSQL and two on one SQLite file in CI; two on PostgreSQL
# on demand (three cover what two do there; the suite's time is shared).
@pytest.mark.parametrize(
    ("state_url", "replicas", "seed"),
    [
        pytest.param("postgres", 2, 21, marks=pytest.mark.ondemand),
        ("postgres", 3, 22),
        ("sqlite", 2, 21),
    ],
    indirect=["state_url"],
)
async def test_replicas_killed_at_random_archive_every_call_exactly_once(
    replicas, seed, state_url, tmp_path, make_bucket, s3_settings, seaweed
):
    rng = random.Random(seed)
    now = datetime.now(UTC)
    sim = Simulator(
        SimConfig(
            seed=seed,
            calls=12,
            recording_fraction=1.0,
            start=now - timedelta(minutes=40),
            span=timedelta(minutes=30),
            max_size=300_000,
            # Recordings trickle (a pause per 64 KiB): transfers stay in flight for
            # a second or so, so a kill lands on claimed work.
            faults=Faults(drip_seconds=0.25),
        )
    )
    storage, storage_env = await _bucket_env(make_bucket, s3_settings, seaweed)
    async with sim.serve() as base:
        env = archiver_env(
            tmp_path,
            base=base,
            sim=sim,
            storage=storage_env,
            tuning=TUNING,
            ARCHIVER_STATE__URL=state_url,
        )
        group = Replicas(env, tmp_path)
        try:
            for slot in range(replicas):
                await group.start(slot)
            restarts = 0
            for step in range(5):
                # Calls keep arriving while replicas die (pacing, not an assertion).
                await asyncio.sleep(rng.uniform(0.8, 2.5))
                sim.add_calls(rng.randint(4, 8))
                if step == 1:
                    await _freeze_the_leader(rng, state_url, group)
                    continue
                # The leader first (the only one polling), then replicas at work.
                pick = _leading if step == 0 else _holding
                victim = await _victim(rng, state_url, group, pick)
                await group.kill(victim)
                if len(group.procs) == 0 or rng.random() < 0.6:
                    await group.start(victim)
                    restarts += 1
                if step == 0:
                    # Another replica (or the restarted one) leads: the polls go on.
                    await _wait_for(
                        lambda: _leading(state_url, group), 30, "a new leader after the kill"
                    )
            if not group.procs:
                await group.start(0)
            sim.add_calls(3)
            await _wait_for(
                lambda: _all_in_manifest(sim, storage), SETTLE_TIMEOUT, "every call archived"
            )
        finally:
            codes = await group.stop_all()
        assert set(codes.values()) == {0}, group.log[-4000:]
        assert restarts >= 1
        # A kill landed on claimed work, and a survivor or a restart took it over.
        taken_over = ("left in flight by an ended run", "of a run that stopped beating")
        assert any(words in group.log for words in taken_over), "no kill caught a transfer"
        # The frozen leader woke up as a follower.
        assert "no longer the leader" in group.log
    await _once_and_verified(sim, storage, env, tmp_path)
    # The shared state agrees: every call archived, none in flight or failed.
    status = await run_cli("status", env=env, cwd=tmp_path)
    assert status.code == 0, status.err
    assert re.search(rf"^\s*archived\s+{len(sim.calls)}$", status.out, re.MULTILINE), status.out
    for state in ("pending", "transferring", "failed"):
        assert re.search(rf"^\s*{state}\s+0$", status.out, re.MULTILINE), status.out


SINCE = "2021-02-17 08:00"
UNTIL = "2021-02-17 14:00"
BACKFILL = ("backfill", "--since", SINCE, "--until", UNTIL)
_LISTED = re.compile(r"listed (\d+) CDR\(s\)")


def _backfill_sim(seed: int) -> Simulator:
    """60 calls over the range, every answer 0.2 s late: with windows of 10 minutes
    (36 of them) the listing lasts seconds, so two processes are at it together."""
    return Simulator(
        SimConfig(seed=seed, calls=60, max_size=150_000, faults=Faults(slow=1.0, slow_seconds=0.2))
    )


def _backfill_env(
    tmp_path: Path, base: str, sim: Simulator, storage_env: dict[str, str], state_url: str
) -> dict[str, str]:
    tuning = {
        **QUICK,
        "ARCHIVER_WINDOW": "600",
        "ARCHIVER_LEASE": "3",
        "ARCHIVER_LEADER_LEASE": "3",
    }
    return archiver_env(
        tmp_path,
        base=base,
        sim=sim,
        storage=storage_env,
        tuning=tuning,
        ARCHIVER_STATE__URL=state_url,
    )


async def test_two_backfills_at_once_split_the_windows_and_archive_every_call_once(
    state_url, tmp_path, make_bucket, s3_settings, seaweed
):
    sim = _backfill_sim(23)
    storage, storage_env = await _bucket_env(make_bucket, s3_settings, seaweed)
    async with sim.serve() as base:
        env = _backfill_env(tmp_path, base, sim, storage_env, state_url)
        first, second = await asyncio.gather(
            run_cli(*BACKFILL, env=env, cwd=tmp_path), run_cli(*BACKFILL, env=env, cwd=tmp_path)
        )
    assert first.code == 0, first.out + first.err
    assert second.code == 0, second.out + second.err
    # The windows were split: each process listed some, and no CDR was listed twice.
    listed = [int(_LISTED.findall(r.out)[-1]) for r in (first, second)]
    assert min(listed) > 0, listed
    assert sum(listed) == len(sim.calls), listed
    await _once_and_verified(sim, storage, env, tmp_path)


async def test_a_backfill_killed_beside_another_leaves_it_all_to_the_survivor(
    postgres_url, tmp_path, make_bucket, s3_settings, seaweed
):
    sim = _backfill_sim(24)
    storage, storage_env = await _bucket_env(make_bucket, s3_settings, seaweed)
    async with sim.serve() as base:
        env = _backfill_env(tmp_path, base, sim, storage_env, postgres_url)
        group = Replicas(env, tmp_path)
        victim = await start_cli(*BACKFILL, env=env, cwd=tmp_path)
        survivor = asyncio.create_task(run_cli(*BACKFILL, env=env, cwd=tmp_path))
        try:
            group.procs[0] = victim

            async def victim_at_work() -> bool:
                return await _holding(postgres_url, group) == [0]

            # Killed while it holds claimed recordings (and, likely, a window).
            await _wait_for(victim_at_work, 60, "the first backfill holding recordings")
            os.killpg(victim.pid, signal.SIGKILL)
            await victim.communicate()
            result = await survivor
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(victim.pid, signal.SIGKILL)
    # The survivor took over the dead one's windows and recordings after their
    # leases, and finished the whole range.
    assert result.code == 0, result.out + result.err
    await _once_and_verified(sim, storage, env, tmp_path)
