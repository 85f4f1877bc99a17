"""Memory: one very large recording (peak RSS), and many CDRs (RSS stays flat).

Both run ``archiver backfill`` as a subprocess with the default settings
(``ARCHIVER_STORAGE__BUFFER_BOUND`` 8 MiB, 8 MiB parts), sampling the RSS of
its process tree every 0.2 s.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench import measure, servers
from tests.bench.measure import MIB, Measured
from tests.support.seaweed import SeaweedServer


def _backfill(
    name: str,
    sim: servers.SimInfo,
    server: SeaweedServer,
    workdir: Path,
    concurrency: int,
    timeout: float,
) -> tuple[Measured, float]:
    env = servers.archiver_env(
        sim,
        server,
        prefix=name,
        state=workdir / f"{name}.sqlite3",
        concurrency=concurrency,
        per_host=concurrency,
    )
    result = measure.run(
        name,
        servers.archiver_command(sim),
        env=env,
        cwd=workdir,
        timeout=timeout,
        interval=0.2,
    ).check()
    inner = servers.archived_seconds(name, result.stdout, sim.calls)
    servers.check_stored(server, f"{name}/recordings/", sim.calls, sim.size, name)
    return result, inner


def run_big(
    server: SeaweedServer, workdir: Path, mib: int, concurrency: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """One recording of ``mib`` MiB: the archiver's peak RSS (target < 250 MiB at 300)."""
    with servers.simulator(1, mib * MIB, workdir) as sim:
        result, inner = _backfill("big", sim, server, workdir, concurrency, timeout=600)
    out = {
        "size_mib": mib,
        "wall_s": result.wall,
        "pipeline_s": inner,
        "mib_per_s": mib / result.wall,
        "cpu_s": result.cpu,
        "peak_rss_mib": result.peak_rss / MIB,
    }
    log(
        f"  big: {mib} MiB in {result.wall:.1f}s ({mib / result.wall:.1f} MiB/s), "
        f"peak RSS {result.peak_rss / MIB:.1f} MiB"
    )
    return out


def flatness(samples: list[tuple[float, int]]) -> dict[str, float]:
    """How the RSS moved once the run was under way.

    The first fifth (start-up, first pages, pools filling) is left out; over
    the rest: the median of the first and of the last quarter, and the slope
    of a least-squares line in MiB per minute.
    """
    if len(samples) < 10:
        return {}
    steady = samples[len(samples) // 5 :]
    quarter = max(len(steady) // 4, 1)
    early = statistics.median(rss for _, rss in steady[:quarter]) / MIB
    late = statistics.median(rss for _, rss in steady[-quarter:]) / MIB
    times = [t for t, _ in steady]
    values = [rss / MIB for _, rss in steady]
    slope = statistics.linear_regression(times, values).slope * 60 if len(set(times)) > 1 else 0.0
    return {
        "steady_early_median_mib": early,
        "steady_late_median_mib": late,
        "growth_mib": late - early,
        "slope_mib_per_min": slope,
        "steady_max_mib": max(values),
    }


def run_many(
    server: SeaweedServer,
    workdir: Path,
    calls: int,
    size: int,
    concurrency: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``calls`` CDRs with ``size``-byte recordings: RSS over the run (should stay flat)."""
    with servers.simulator(calls, size, workdir, timeout=600) as sim:
        result, inner = _backfill("many", sim, server, workdir, concurrency, timeout=1500)
    flat = flatness(result.samples)
    # A coarse curve for the report: RSS at each tenth of the run.
    curve = [
        {"t_s": round(t, 1), "rss_mib": round(rss / MIB, 1)}
        for t, rss in result.samples[:: max(len(result.samples) // 10, 1)]
    ]
    out = {
        "calls": calls,
        "size": size,
        "wall_s": result.wall,
        "pipeline_s": inner,
        "recordings_per_s": calls / result.wall,
        "cpu_s": result.cpu,
        "peak_rss_mib": result.peak_rss / MIB,
        **flat,
        "curve": curve,
    }
    log(
        f"  many: {calls} in {result.wall:.0f}s ({calls / result.wall:.0f} rec/s), peak RSS "
        f"{result.peak_rss / MIB:.1f} MiB, steady {flat.get('steady_early_median_mib', 0):.1f}"
        f" -> {flat.get('steady_late_median_mib', 0):.1f} MiB "
        f"({flat.get('slope_mib_per_min', 0):+.2f} MiB/min)"
    )
    return out
