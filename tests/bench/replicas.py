"""``python -m tests.bench.replicas [--calls 1000] [--size 262144] [--legs ...]``: replicas.

Throughput (recordings/s) of ``archiver run`` as one node on SQLite, and as one,
two and three replicas sharing one PostgreSQL state, on the same workload: the
simulated provider (a process of its own) serving ``--calls`` recordings of
``--size`` bytes from calls of the last hour, into one SeaweedFS, a fresh prefix
and a fresh state per leg. A leg's clock runs from starting its processes to
the moment every recording is in the storage (a LIST every 0.5 s); then its
replicas are stopped with SIGTERM, and every object is checked (count and bytes).
Each replica runs the defaults a user gets (``ARCHIVER_CONCURRENCY`` 16), with
quick polls (1 s) so the first poll is not what is measured.

Every leg runs ``--reps`` times (3), the order rotated each round. One JSON
line per leg and round is printed (its recordings/s, wall seconds, seconds to
the first recording stored, the CPU seconds of its replicas and of the rest of
the machine meanwhile: the noise on a shared machine, the load average at its
end), then a summary line (medians). docs/performance.md quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from tests.bench import measure, servers
from tests.support.postgres import PostgresCluster, PostgresServer
from tests.support.seaweed import SeaweedServer

LEGS = ("sqlite-1", "postgres-1", "postgres-2", "postgres-3")


@dataclass
class Leg:
    """One leg's figures."""

    leg: str
    rep: int
    replicas: int
    recordings: int
    size: int
    wall: float
    per_second: float
    # Seconds from the start to the first recording stored (start-up and first poll),
    # and the rate from then on (start-up aside).
    first_stored: float
    steady_per_second: float
    replicas_cpu: float
    # CPU seconds of the simulator, SeaweedFS and the PostgreSQL server (0 for SQLite).
    sim_cpu: float
    weed_cpu: float
    postgres_cpu: float
    others_cpu: float
    load_avg_1m: float


def _env(sim: servers.SimInfo, server: SeaweedServer, prefix: str, state: str) -> dict[str, str]:
    return servers.archiver_env(
        sim,
        server,
        prefix=prefix,
        state=Path(state),
        concurrency=16,
        per_host=16,
        extra={
            "ARCHIVER_STATE__URL": state,
            "ARCHIVER_LOOKBACK": "3600",
            "ARCHIVER_POLL_INTERVAL": "1",
            "ARCHIVER_SERVICE__ENABLED": "false",
            "ARCHIVER_LOG_FORMAT": "json",
        },
    )


def run_leg(
    name: str,
    rep: int,
    replicas: int,
    state: str,
    sim: servers.SimInfo,
    server: SeaweedServer,
    weed_pid: int,
    postmaster: int | None,
    workdir: Path,
    timeout: float,
) -> Leg:
    """Start ``replicas`` runs on ``state``; time them to the last recording stored."""
    prefix = f"{name}-{uuid.uuid4().hex[:6]}"
    env = _env(sim, server, prefix, state)
    logs = [(workdir / f"{prefix}-{i}.log").open("wb") for i in range(replicas)]
    servers_before = _servers_cpu(sim.pid, weed_pid, postmaster)
    busy0, me0 = measure.busy_cpu_seconds(), measure.cpu_seconds(os.getpid())
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(  # noqa: S603 (our own argument list)
            [sys.executable, "-m", "archiver", "run"],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        for log in logs
    ]
    cpu: dict[int, float] = {}
    first: float | None = None
    first_objects = 0
    try:
        while True:
            objects, _ = asyncio.run(servers.count_objects(server, f"{prefix}/recordings/"))
            if objects and first is None:
                first, first_objects = time.monotonic() - t0, objects
            for p in procs:
                cpu[p.pid] = measure.cpu_seconds(p.pid) or cpu.get(p.pid, 0.0)
            if objects >= sim.calls:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{name}: a replica exited early; see {workdir}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{name}: {objects} of {sim.calls} stored in {timeout}s")
            time.sleep(0.5)
        wall = time.monotonic() - t0
        busy = measure.busy_cpu_seconds() - busy0
        me = measure.cpu_seconds(os.getpid()) - me0
        sim_cpu, weed_cpu, pg_cpu = (
            after - before
            for after, before in zip(
                _servers_cpu(sim.pid, weed_pid, postmaster), servers_before, strict=True
            )
        )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    servers.check_stored(server, f"{prefix}/recordings/", sim.calls, sim.size, name)
    mine = sum(cpu.values())
    return Leg(
        leg=name,
        rep=rep,
        replicas=replicas,
        recordings=sim.calls,
        size=sim.size,
        wall=round(wall, 2),
        per_second=round(sim.calls / wall, 1),
        first_stored=round(first if first is not None else wall, 2),
        steady_per_second=round(
            (sim.calls - first_objects) / (wall - first) if first and wall > first else 0.0, 1
        ),
        replicas_cpu=round(mine, 1),
        sim_cpu=round(sim_cpu, 1),
        weed_cpu=round(weed_cpu, 1),
        postgres_cpu=round(pg_cpu, 1),
        others_cpu=round(max(busy - mine - sim_cpu - weed_cpu - pg_cpu - me, 0.0), 1),
        load_avg_1m=round(os.getloadavg()[0], 2),
    )


def _servers_cpu(sim: int, weed: int, postmaster: int | None) -> tuple[float, float, float]:
    """CPU seconds so far of the simulator, SeaweedFS and PostgreSQL (its postmaster
    and every backend it has reaped: a replica's connections end with it)."""
    pg = 0.0
    if postmaster is not None:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(postmaster).cpu_times()
            pg = t.user + t.system + t.children_user + t.children_system
            for child in psutil.Process(postmaster).children():
                pg += measure.cpu_seconds(child.pid)
    return measure.cpu_seconds(sim), measure.cpu_seconds(weed), pg


def summary(results: list[Leg], legs: list[str]) -> dict[str, object]:
    """The median recordings/s of each leg, and each against the SQLite single node."""
    medians = {
        leg: statistics.median(r.per_second for r in results if r.leg == leg) for leg in legs
    }
    steady = {
        leg: statistics.median(r.steady_per_second for r in results if r.leg == leg) for leg in legs
    }
    # CPU per recording (replicas and PostgreSQL server): what noise moves least.
    cpu_ms = {
        leg: round(
            statistics.median(
                1000 * (r.replicas_cpu + r.postgres_cpu) / r.recordings
                for r in results
                if r.leg == leg
            ),
            2,
        )
        for leg in legs
    }
    base = medians.get("sqlite-1")
    return {
        "summary": "median recordings/s",
        "legs": medians,
        "steady": steady,
        "cpu_ms_per_recording": cpu_ms,
        "vs_sqlite_1": {leg: round(v / base, 2) for leg, v in medians.items()} if base else None,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def _postmaster(cluster: PostgresCluster) -> int:
    """The cluster's server process (the first line of its postmaster.pid)."""
    return int((cluster.datadir / "postmaster.pid").read_text().split()[0])


def state_for(leg: str, pg: PostgresServer | None, workdir: Path) -> str:
    """A fresh state for the leg: an SQLite file, or a new database on the cluster."""
    if leg.startswith("sqlite"):
        return str(workdir / f"{leg}-{uuid.uuid4().hex[:6]}.sqlite3")
    assert pg is not None
    return pg.create_database(f"bench_{leg.replace('-', '_')}_{uuid.uuid4().hex[:6]}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.bench.replicas", description=__doc__)
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--size", type=int, default=256 * 1024)
    p.add_argument("--legs", default=",".join(LEGS), help=f"default {','.join(LEGS)}")
    p.add_argument("--reps", type=int, default=3, help="rounds of every leg (order rotated)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per leg at most")
    p.add_argument("--keep", type=Path, help="keep the replicas' logs in this directory")
    args = p.parse_args(argv)
    legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    unknown = sorted(set(legs) - set(LEGS))
    if unknown:
        p.error(f"unknown legs: {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        workdir = Path(tmp)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = args.keep
        cluster = PostgresCluster() if any(leg.startswith("postgres") for leg in legs) else None
        pg = cluster.start() if cluster is not None else None
        postmaster = _postmaster(cluster) if cluster is not None else None
        try:
            with (
                servers.seaweed(workdir / "weed") as (server, weed_pid),
                servers.simulator(args.calls, args.size, workdir, recent=True) as sim,
            ):
                results: list[Leg] = []
                for rep in range(args.reps):
                    # Rotated, so a slow spell of the shared machine hits no leg only.
                    for leg in legs[rep % len(legs) :] + legs[: rep % len(legs)]:
                        replicas = int(leg.rsplit("-", 1)[1])
                        state = state_for(leg, pg, workdir)
                        result = run_leg(
                            leg,
                            rep,
                            replicas,
                            state,
                            sim,
                            server,
                            weed_pid,
                            postmaster,
                            workdir,
                            args.timeout,
                        )
                        results.append(result)
                        print(json.dumps(asdict(result)), flush=True)
                print(json.dumps(summary(results, legs)), flush=True)
        finally:
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    main()
