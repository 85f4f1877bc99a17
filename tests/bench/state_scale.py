"""The state store at scale: a million CDRs in SQLite.

``python -m tests.bench.state_scale --calls N --db PATH`` fills a fresh state
file with N realistic cdr_v2 CDRs (the simulator's records parsed by the real
source mapping, raw payload included, then given unique ids and times) in pages
of 100, as the pipeline does, then times: the insert, the same pages again
(deduplication), lookups by sip_call_id and by cdr_id, a claim of due jobs,
and the counts. Prints one JSON line. The harness runs it as a subprocess
(its peak RSS and CPU measured), then times ``archiver status`` on the file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.models import CallRecord
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.records import default_record
from archiver.sources.cdr_v2 import parse_record
from archiver.state.sqlite import SqliteState
from tests.bench import measure
from tests.bench.measure import MIB
from tests.support.cli import cli_env

PAGE = 100
TEMPLATES = 500


def templates() -> list[CallRecord]:
    """Realistic CDRs as the source parses them (both shapes' quirks come from the seed)."""
    sim = Simulator(SimConfig(seed=11, calls=TEMPLATES, recording_fraction=0.9))
    base = "https://pbx.example.vn"
    return [
        parse_record(
            default_record(c, f"{base}/recordings/{c.filename}" if c.has_recording else "", sim.tz),
            sim.tz,
        )
        for c in sim.calls
    ]


def pages(n: int, seed: int = 3) -> Iterator[list[CallRecord]]:
    """``n`` CDRs with unique ids, one per 2.6 s over 30 days, in pages of PAGE."""
    rng = random.Random(seed)
    models = templates()
    start = datetime(2021, 1, 1, tzinfo=UTC)
    page: list[CallRecord] = []
    for i in range(n):
        model = models[i % len(models)]
        cdr_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        sip = uuid.UUID(int=rng.getrandbits(128), version=4).hex + "@10.0.0.1"
        url = f"https://pbx.example.vn/recordings/{cdr_id}.wav" if model.recording_url else None
        page.append(
            dataclasses.replace(
                model,
                cdr_id=cdr_id,
                sip_call_id=sip,
                started_at=start + timedelta(seconds=i * 2.6),
                recording_url=url,
                raw={**model.raw, "id": cdr_id, "sip_call_id": sip, "recording_url": url or ""},
            )
        )
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


async def _timed(call: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "mean_ms": statistics.fmean(values) * 1000,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def fill_and_time(n: int, db: Path) -> dict[str, Any]:
    now = datetime(2021, 2, 1, tzinfo=UTC)
    out: dict[str, Any] = {"calls": n, "page": PAGE}
    sample_sips: list[str] = []
    sample_ids: list[str] = []
    rng = random.Random(5)
    store = await SqliteState.open(db, clock=lambda: now)
    try:
        # Generate outside the clock: this measures the store, not the fixture.
        generated = time.perf_counter()
        all_pages = list(pages(n))
        out["generate_s"] = time.perf_counter() - generated
        # Up to 2,000 calls spread over the whole range, to look up afterwards.
        for page in all_pages[:: max(len(all_pages) // 2000, 1)]:
            call = rng.choice(page)
            sample_sips.append(call.sip_call_id)
            sample_ids.append(call.cdr_id)

        tenth = max(len(all_pages) // 10, 1)
        page_times: list[float] = []
        new = 0
        started = time.perf_counter()
        for page in all_pages:
            t0 = time.perf_counter()
            new += (await store.jobs.add_calls(page, now)).new
            page_times.append(time.perf_counter() - t0)
        insert = time.perf_counter() - started
        assert new == n, f"{new} new of {n}"
        out["insert_s"] = insert
        out["insert_per_s"] = n / insert
        # Does the insert slow down as the table grows? First tenth vs last tenth.
        out["insert_first_tenth_per_s"] = tenth * PAGE / sum(page_times[:tenth])
        out["insert_last_tenth_per_s"] = tenth * PAGE / sum(page_times[-tenth:])
        out["insert_page"] = _ms(page_times)

        started = time.perf_counter()
        known = 0
        for page in all_pages:
            known += (await store.jobs.add_calls(page, now)).known
        dedup = time.perf_counter() - started
        assert known == n, f"{known} known of {n}"
        out["dedup_s"] = dedup
        out["dedup_per_s"] = n / dedup
        del all_pages

        sip_times = [await _timed(_found(store, s)) for s in sample_sips[:2000]]
        id_times = [await _timed(_found(store, s)) for s in sample_ids[:2000]]
        miss_times = [await _timed(store.reports.find_job("no-such-call")) for _ in range(200)]
        out["lookup_sip_call_id"] = {"n": len(sip_times), **_ms(sip_times)}
        out["lookup_cdr_id"] = {"n": len(id_times), **_ms(id_times)}
        out["lookup_missing"] = {"n": len(miss_times), **_ms(miss_times)}

        claims = [await _timed(store.jobs.claim_due(now, 16)) for _ in range(50)]
        out["claim_due_16"] = {"n": len(claims), **_ms(claims)}
        await store.leases.release_transferring()
        counts = [await _timed(store.reports.counts()) for _ in range(5)]
        out["counts"] = _ms(counts)
        out["next_due_at"] = _ms([await _timed(store.jobs.next_due_at()) for _ in range(5)])
    finally:
        await store.close()
    out["db_mib"] = sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / MIB
    return out


async def _found(store: SqliteState, ident: str) -> None:
    if await store.reports.find_job(ident) is None:
        raise AssertionError(f"{ident} not found")


def run(workdir: Path, n: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The fill in a subprocess (measured), then ``archiver status`` on the file (measured)."""
    db = workdir / "state-scale.sqlite3"
    for p in workdir.glob(db.name + "*"):
        p.unlink()
    env = cli_env()
    fill = measure.run(
        "state-fill",
        [sys.executable, "-m", "tests.bench.state_scale", "--calls", str(n), "--db", str(db)],
        env=env,
        cwd=workdir,
        timeout=1200,
        interval=0.5,
    ).check()
    out: dict[str, Any] = json.loads(fill.stdout.strip().splitlines()[-1])
    out["fill_process"] = {
        "wall_s": fill.wall,
        "cpu_s": fill.cpu,
        "peak_rss_mib": fill.peak_rss / MIB,
    }
    status_env = cli_env({"ARCHIVER_STATE__URL": str(db), "ARCHIVER_SOURCE__KIND": "cdr_v2"})
    statuses = measure.repeat(
        "status",
        [sys.executable, "-m", "archiver", "status"],
        env=status_env,
        cwd=workdir,
        timeout=300,
    )
    walls = [status.wall for status in statuses]
    out["status_wall_s"] = measure.median(walls)
    out["status_walls_s"] = walls
    out["cli_startup_s"] = measure.cli_startup_s(status_env, workdir, "status")
    out["status_output"] = statuses[-1].stdout
    log(
        f"  state: insert {out['insert_per_s']:.0f}/s ({out['insert_first_tenth_per_s']:.0f}/s "
        f"first tenth, {out['insert_last_tenth_per_s']:.0f}/s last), dedup "
        f"{out['dedup_per_s']:.0f}/s, lookup sip_call_id p50 "
        f"{out['lookup_sip_call_id']['p50_ms']:.2f} ms, `archiver status` "
        f"{out['status_wall_s']:.2f}s (CLI start-up alone {out['cli_startup_s']:.2f}s), "
        f"db {out['db_mib']:.0f} MiB"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(fill_and_time(args.calls, args.db))), flush=True)


if __name__ == "__main__":
    main()
