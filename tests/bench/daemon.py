"""``python -m tests.bench.daemon [--only requests,latency] [--quick]``: the daemon.

requests  list requests per hour at 1,000 and 10,000 calls an hour, in simulated
          time against the simulator over HTTP: the counting polls (every 10 s)
          plus the sweeps (every 10 min, with their lookups by id), against the
          old full re-read of the lookback (every 60 s, its default then). CDRs
          appear when their call ends: call lengths are exponential with a mean
          of 3 min, and 1 % last 1 to 3 h.
latency   real time, default settings (poll 10 s, manifest interval 10 s), local
          storage: from a CDR becoming visible (with a ready recording) to its
          line in a manifest object in the storage, p50 and p95, and the
          manifest objects written.

Results are printed as JSON; docs/performance.md quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.commands.runtime import open_runtime
from archiver.pipeline.poller import Poller
from archiver.settings import RetrySettings, StorageSettings
from archiver.simulator import SimConfig, Simulator
from tests.support.pipeline import FIXED_START, make_settings, producers
from tests.support.stepped import Clock


class FullReread(Poller):
    """The old poll: no count to trust, so every poll lists the whole lookback."""

    async def _count(self, lo: int, hi: int, end: datetime) -> int | None:
        return None


def schedule(
    rate: int, since: datetime, until: datetime, seed: int = 15
) -> list[tuple[datetime, datetime]]:
    """(visible at, call start) for calls at ``rate`` an hour starting in [since, until)."""
    rng = random.Random(seed)
    seconds = int((until - since).total_seconds())
    calls = []
    for _ in range(int(rate * seconds / 3600)):
        start = since + timedelta(seconds=rng.randrange(seconds))
        length = rng.uniform(3600, 3 * 3600) if rng.random() < 0.01 else rng.expovariate(1 / 180)
        calls.append((start + timedelta(seconds=min(length, 3 * 3600)), start))
    return sorted(calls)


async def requests_leg(rate: int, *, old: bool, workdir: Path) -> dict[str, Any]:
    now = FIXED_START + timedelta(hours=4)
    clock = Clock(now)
    calls = schedule(rate, now - timedelta(hours=3), now + timedelta(hours=1))
    sim = Simulator(SimConfig(seed=15, calls=0, start=FIXED_START, max_size=50_000))
    poll = 60.0 if old else 10.0
    storage = StorageSettings(url=str(workdir / "archive"))
    async with sim.serve() as base:
        settings = make_settings(
            sim, base, storage, str(workdir / f"{rate}-{old}.sqlite3"),
            source={"page_size": 100}, retry=RetrySettings(),
            poll_interval=poll, settle=0,
        )  # fmt: skip
        async with open_runtime(settings) as rt:
            p = rt.pipeline
            p.clock = clock
            kind = FullReread if old else Poller
            poller, sweeper = producers(rt, clock, kind)
            stop = asyncio.Event()
            shown = 0
            while shown < len(calls) and calls[shown][0] <= clock.now:
                shown += 1
            sim.add_calls_at([s for _, s in calls[:shown]])
            await poller.poll_once(p, stop)
            if not old:
                await sweeper.sweep_once(p, stop)
            before = dict(sim.stats)
            in_state = sum((await rt.state.reports.counts()).values())
            first_shown = shown
            started = time.monotonic()
            polls = sweeps = 0
            elapsed = 0.0
            while elapsed < 3600:
                clock.advance(poll)
                elapsed += poll
                upto = shown
                while upto < len(calls) and calls[upto][0] <= clock.now:
                    upto += 1
                sim.add_calls_at([s for _, s in calls[shown:upto]])
                shown = upto
                await poller.poll_once(p, stop)
                polls += 1
                if not old and elapsed % p.config.sweep_interval == 0:
                    await sweeper.sweep_once(p, stop)
                    sweeps += 1
            listed = sum(sim.stats[k] - before.get(k, 0) for k in ("api:cdr_v2_list",))
            lookups = sim.stats["api:cdr_v2_get"] - before.get("api:cdr_v2_get", 0)
            added = sum((await rt.state.reports.counts()).values()) - in_state
            missing = (shown - first_shown) - added
    return {
        "rate_per_hour": rate,
        "behaviour": "full re-read every 60 s" if old else "counts every 10 s + sweeps",
        "polls": polls,
        "sweeps": sweeps,
        "list_requests": listed,
        "lookups_by_id": lookups,
        "cdrs_visible_in_the_hour_not_listed": missing,
        "wall_s": round(time.monotonic() - started, 1),
    }


async def latency_leg(minutes: float, every: float, workdir: Path) -> dict[str, Any]:
    sim = Simulator(SimConfig(seed=16, calls=0, fixed_size=48_000, recording_fraction=1.0))
    storage = StorageSettings(url=str(workdir / "lat-archive"))
    visible: dict[str, float] = {}
    seen: dict[str, float] = {}
    rng = random.Random(16)
    async with sim.serve() as base:
        settings = make_settings(
            sim, base, storage, str(workdir / "lat.sqlite3"),
            retry=RetrySettings(), manifest_interval=10.0, poll_interval=10.0, settle=0,
        )  # fmt: skip
        async with open_runtime(settings) as rt:
            run = asyncio.create_task(rt.pipeline.daemon())

            async def arrive() -> None:
                deadline = time.monotonic() + minutes * 60
                while time.monotonic() < deadline:
                    start = datetime.now(sim.tz).replace(microsecond=0)
                    start -= timedelta(seconds=rng.randrange(5, 600))
                    (call,) = sim.add_calls_at([start])
                    visible[call.sip_call_id] = time.time()
                    await asyncio.sleep(rng.expovariate(1 / every))

            async def watch() -> None:
                known: set[str] = set()
                while True:
                    async for obj in rt.store.list("manifests/"):
                        if obj.key in known:
                            continue
                        known.add(obj.key)
                        body = b"".join([c async for c in rt.store.read(obj.key)])
                        for line in body.decode().splitlines():
                            seen.setdefault(json.loads(line)["sip_call_id"], time.time())
                    await asyncio.sleep(0.25)

            watcher = asyncio.create_task(watch())
            await arrive()
            for _ in range(160):  # let the last calls through: 40 s
                if set(visible) <= set(seen):
                    break
                await asyncio.sleep(0.25)
            watcher.cancel()
            rt.pipeline.stop()
            await run
            objects = len([o async for o in rt.store.list("manifests/")])
    delays = sorted(seen[k] - visible[k] for k in visible if k in seen)
    q = statistics.quantiles(delays, n=20) if len(delays) > 1 else delays * 19
    return {
        "minutes": minutes,
        "calls": len(visible),
        "in_manifest": len(delays),
        "p50_s": round(statistics.median(delays), 1),
        "p95_s": round(q[18], 1),
        "max_s": round(delays[-1], 1),
        "manifest_objects": objects,
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tests.bench.daemon", description=__doc__)
    p.add_argument("--only", default="requests,latency")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--minutes", type=float, help="latency: minutes of arrivals (default 5)")
    args = p.parse_args()
    legs = args.only.split(",")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "requests" in legs:
            rates = (1000,) if args.quick else (1000, 10_000)
            results["requests"] = []
            for rate in rates:
                for old in (False, True):
                    leg = asyncio.run(requests_leg(rate, old=old, workdir=work))
                    print(json.dumps(leg), flush=True)  # each leg as it ends: they are long
                    results["requests"].append(leg)
        if "latency" in legs:
            minutes = args.minutes or (1.0 if args.quick else 5.0)
            results["latency"] = asyncio.run(latency_leg(minutes, 3.0, work))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
