"""Throughput: ``archiver backfill`` vs ``rclone copy`` vs a bare PUT loop, same data.

Each repetition runs the three legs in a rotated order (archiver, rclone, put;
then rclone, put, archiver; ...), so a slow spell on the shared machine does
not land on one leg only. Each leg writes under a fresh prefix and is checked
afterwards: every object there, with the right total size.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from tests.bench import measure, servers
from tests.bench.measure import MIB, Measured
from tests.support.seaweed import SeaweedServer

LEGS = ("archiver", "rclone", "put", "put-shaped")


@dataclass
class LegRun:
    """One leg's run: its cost, and the servers' CPU while it ran."""

    leg: str
    rep: int
    wall: float
    cpu: float
    peak_rss_mib: float
    objects: int
    inner: float | None  # the leg's own timing (archiver: pipeline; put: the PUT loop)
    sim_cpu: float
    weed_cpu: float
    main_thread_cpu: float = 0.0
    other_threads_cpu: float = 0.0
    # CPU seconds the rest of the machine (other developers' work) used meanwhile:
    # the noise indicator. On 2 cores, a leg of W seconds has 2W to share.
    others_cpu: float = 0.0
    # Requests the simulated provider answered (API calls and recording GETs/HEADs),
    # and the storage's (counted only through the delaying proxy: None otherwise).
    provider_requests: int = 0
    storage_requests: int | None = None

    @property
    def per_second(self) -> float:
        return self.objects / self.wall if self.wall else 0.0


@dataclass
class Setup:
    """What the throughput legs share."""

    server: SeaweedServer
    weed_pid: int
    sim: servers.SimInfo
    workdir: Path
    concurrency: int
    per_host: int
    timeout: float
    # Other copies of the package to alternate with the measured one: leg
    # "archiver:<name>" runs the archiver from the directory (--compare).
    variants: dict[str, Path] = field(default_factory=dict)
    # The storage requests so far, where a proxy counts them (the latency legs).
    storage_requests: Callable[[], int] | None = None
    # Before every leg's prefix (and state file): legs run again elsewhere start afresh.
    tag: str = ""


def run_archiver(
    s: Setup,
    rep: int,
    name: str = "archiver",
    wrap: list[str] | None = None,
    variant: str | None = None,
    settings: dict[str, str] | None = None,
) -> LegRun:
    leg = f"archiver:{variant}" if variant else name if settings else "archiver"
    prefix = f"{s.tag}{name}-{variant}-{rep}" if variant else f"{s.tag}{name}-{rep}"
    extra = dict(settings or {})
    if variant:
        code = s.variants[variant]
        extra["PYTHONPATH"] = servers.code_pythonpath(code)
    env = servers.archiver_env(
        s.sim,
        s.server,
        prefix=prefix,
        state=s.workdir / f"{prefix}.sqlite3",
        concurrency=s.concurrency,
        per_host=s.per_host,
        extra=extra,
    )
    command = [*(wrap or []), *servers.archiver_command(s.sim)]
    run = _measured(s, prefix, command, env)
    inner = servers.archived_seconds(leg, run.result.stdout, s.sim.calls)
    return _leg(s, leg, rep, run, f"{prefix}/recordings/", inner)


def run_rclone(s: Setup, rep: int) -> LegRun:
    prefix = f"{s.tag}rclone-{rep}"
    env = servers.rclone_env(s.server, s.workdir / "rclone.conf")
    run = _measured(s, prefix, servers.rclone_command(s.sim, prefix, s.concurrency), env)
    return _leg(s, "rclone", rep, run, f"{prefix}/", None)


def run_put(s: Setup, rep: int, shape: str = "bare") -> LegRun:
    leg = "put" if shape == "bare" else "put-shaped"
    prefix = f"{s.tag}{leg}-{rep}/"
    command = servers.bare_put_command(
        s.server, prefix, s.sim.calls, s.sim.size, s.concurrency, shape
    )
    run = _measured(s, f"{s.tag}{leg}-{rep}", command, servers.bare_env(s.server))
    inner = float(json.loads(run.result.stdout.strip().splitlines()[-1])["elapsed"])
    return _leg(s, leg, rep, run, prefix, inner)


def run_put_shaped(s: Setup, rep: int) -> LegRun:
    return run_put(s, rep, "archiver")


# The hot path's options (issue 25 item 4), each the archiver's storage path alone
# (bare_put's "archiver" shapes): the full client or the lean PutObject, on asyncio
# or uvloop, with botocore's CRT extras (awscrt) or without, as today's install.
HOT_PATH: dict[str, tuple[str, tuple[str, ...], dict[str, str]]] = {
    "put-full": ("archiver-full", (), {"BOTO_DISABLE_CRT": "true"}),
    "put-full-crt": ("archiver-full", (), {"BOTO_DISABLE_CRT": "false"}),
    "put-full-uvloop": ("archiver-full", ("--loop", "uvloop"), {"BOTO_DISABLE_CRT": "true"}),
    "put-lean": ("archiver", (), {"BOTO_DISABLE_CRT": "true"}),
    "put-lean-crt": ("archiver", (), {"BOTO_DISABLE_CRT": "false"}),
    "put-lean-uvloop": ("archiver", ("--loop", "uvloop"), {"BOTO_DISABLE_CRT": "true"}),
}


def run_hot_path(s: Setup, rep: int, leg: str) -> LegRun:
    """One of :data:`HOT_PATH`'s legs."""
    shape, extra, env = HOT_PATH[leg]
    prefix = f"{s.tag}{leg}-{rep}/"
    command = [
        *servers.bare_put_command(s.server, prefix, s.sim.calls, s.sim.size, s.concurrency, shape),
        *extra,
    ]
    run = _measured(s, f"{s.tag}{leg}-{rep}", command, {**servers.bare_env(s.server), **env})
    inner = float(json.loads(run.result.stdout.strip().splitlines()[-1])["elapsed"])
    return _leg(s, leg, rep, run, prefix, inner)


# The archiver's other parts alone (issue 25 item 4: where the CPU per recording goes):
# the download (bare_get: GET, SHA-256, join; without the SHA-256 and join), and the
# fixed cost of a process (a backfill of an hour without calls: start-up, clients,
# state), each divided by the bench's recordings like the other legs.
PARTS: dict[str, list[str]] = {
    "get": [],
    "get-uvloop": ["--loop", "uvloop"],
    "get-nohash": ["--no-hash"],
}


def run_part(s: Setup, rep: int, leg: str) -> LegRun:
    """One of :data:`PARTS`'s legs, or ``start-up``."""
    if leg == "start-up":
        empty = datetime.fromisoformat(s.sim.since) - timedelta(hours=2)
        prefix = f"{s.tag}start-up-{rep}"
        env = servers.archiver_env(
            s.sim, s.server, prefix=prefix, state=s.workdir / f"{prefix}.sqlite3",
            concurrency=s.concurrency, per_host=s.per_host,
        )  # fmt: skip
        command = servers.archiver_command(s.sim, since=empty, until=empty + timedelta(hours=1))
        return _leg(s, leg, rep, _measured(s, prefix, command, env), None, None)
    command = [sys.executable, "-m", "tests.bench.bare_get", "--base-url", s.sim.base_url]
    command += ["--concurrency", str(s.concurrency), *PARTS[leg]]
    run = _measured(s, f"{s.tag}{leg}-{rep}", command, servers.bare_env(s.server))
    got = json.loads(run.result.stdout.strip().splitlines()[-1])
    if got["bytes"] != s.sim.calls * s.sim.size:
        raise RuntimeError(f"{leg}: {got['bytes']} bytes downloaded")
    return _leg(s, leg, rep, run, None, float(got["elapsed"]))


_RUNNERS: dict[str, Callable[[Setup, int], LegRun]] = {
    "archiver": run_archiver,
    "rclone": run_rclone,
    "put": run_put,
    "put-shaped": run_put_shaped,
    # The archiver on asyncio's own loop: what uvloop (the default) saves.
    "archiver-asyncio": lambda s, rep: run_archiver(
        s, rep, name="archiver-asyncio", settings={"ARCHIVER_EVENT_LOOP": "asyncio"}
    ),
    **{leg: (lambda s, rep, leg=leg: run_hot_path(s, rep, leg)) for leg in HOT_PATH},  # type: ignore[misc]
    **{leg: (lambda s, rep, leg=leg: run_part(s, rep, leg)) for leg in (*PARTS, "start-up")},  # type: ignore[misc]
}


@dataclass
class _Run:
    result: Measured
    sim_cpu: float
    weed_cpu: float
    others_cpu: float
    provider_requests: int
    storage_requests: int | None


def _measured(s: Setup, name: str, command: list[str], env: dict[str, str]) -> _Run:
    sim0, weed0 = measure.cpu_seconds(s.sim.pid), measure.cpu_seconds(s.weed_pid)
    me0, busy0 = measure.cpu_seconds(os.getpid()), measure.busy_cpu_seconds()
    asked0 = servers.provider_requests(s.sim)
    stored0 = s.storage_requests() if s.storage_requests else 0
    result = measure.run(name, command, env=env, cwd=s.workdir, timeout=s.timeout).check()
    stored = s.storage_requests() - stored0 if s.storage_requests else None
    busy = measure.busy_cpu_seconds() - busy0
    sim = measure.cpu_seconds(s.sim.pid) - sim0
    weed = measure.cpu_seconds(s.weed_pid) - weed0
    me = measure.cpu_seconds(os.getpid()) - me0
    others = max(busy - result.cpu - sim - weed - me, 0.0)
    asked = servers.provider_requests(s.sim) - asked0
    return _Run(result, sim, weed, others, provider_requests=asked, storage_requests=stored)


def _leg(
    s: Setup, leg: str, rep: int, run: _Run, prefix: str | None, inner: float | None
) -> LegRun:
    if prefix is not None:  # None: a leg that stores nothing (PARTS, start-up)
        servers.check_stored(s.server, prefix, s.sim.calls, s.sim.size, f"{leg} rep {rep}")
    return LegRun(
        leg=leg,
        rep=rep,
        wall=run.result.wall,
        cpu=run.result.cpu,
        peak_rss_mib=run.result.peak_rss / MIB,
        objects=s.sim.calls,
        inner=inner,
        sim_cpu=run.sim_cpu,
        weed_cpu=run.weed_cpu,
        main_thread_cpu=run.result.main_thread_cpu,
        other_threads_cpu=run.result.other_threads_cpu,
        others_cpu=run.others_cpu,
        provider_requests=run.provider_requests,
        storage_requests=run.storage_requests,
    )


def run_all(
    s: Setup, reps: int, log: Callable[[str], None], legs: tuple[str, ...] | None = None
) -> list[LegRun]:
    """``reps`` rounds of every leg, the order rotated each round."""
    legs = legs or LEGS
    # Warm-up, not counted: SeaweedFS grows its first volumes on the first writes.
    warm = servers.bare_put_command(s.server, "warmup/", 200, s.sim.size, s.concurrency)
    measure.run("warmup", warm, env=servers.bare_env(s.server), cwd=s.workdir, timeout=120).check()
    runs: list[LegRun] = []
    for rep in range(reps):
        order = legs[rep % len(legs) :] + legs[: rep % len(legs)]
        for leg in order:
            if leg.startswith("archiver:"):
                run = run_archiver(s, rep, variant=leg.split(":", 1)[1])
            else:
                run = _RUNNERS[leg](s, rep)
            runs.append(run)
            mib_s = run.objects * s.sim.size / MIB / run.wall
            log(
                f"  rep {rep} {leg:<8} wall {run.wall:6.2f}s  {run.per_second:7.1f} rec/s  "
                f"{mib_s:6.1f} MiB/s  cpu {run.cpu:5.1f}s  peak RSS {run.peak_rss_mib:6.1f} MiB"
                f"  (main thread {run.main_thread_cpu:4.1f}s, other threads "
                f"{run.other_threads_cpu:4.1f}s; sim cpu {run.sim_cpu:4.1f}s, weed cpu "
                f"{run.weed_cpu:4.1f}s; others on the machine {run.others_cpu:4.1f}s)"
            )
    return runs


QUIET = 0.10
"""A run is quiet when the rest of the machine used at most this share of its CPU time."""


def is_quiet(run: LegRun, cores: int = 2) -> bool:
    """Whether others' work took at most QUIET of the CPU time the run had."""
    return run.others_cpu <= QUIET * cores * run.wall


def summarize(runs: list[LegRun], size: int) -> dict[str, object]:
    """Medians per leg, the noise between repetitions, and the ratios.

    Besides the medians of every run, the medians of the quiet runs (others'
    work under 10% of the machine meanwhile), where a leg has any.
    """
    legs: dict[str, dict[str, float]] = {}
    for leg in dict.fromkeys(r.leg for r in runs):
        mine = [r for r in runs if r.leg == leg]
        walls = [r.wall for r in mine]
        wall = statistics.median(walls)
        objects = mine[0].objects
        legs[leg] = {
            "wall_s": wall,
            "wall_min_s": min(walls),
            "wall_max_s": max(walls),
            "wall_spread": measure.spread(walls),
            "recordings_per_s": objects / wall,
            "mib_per_s": objects * size / MIB / wall,
            "cpu_s": measure.median([r.cpu for r in mine]),
            # The CPU target is per recording (<= 2 x rclone's).
            "cpu_ms_per_recording": measure.median([r.cpu for r in mine]) * 1000 / objects,
            "peak_rss_mib": measure.median([r.peak_rss_mib for r in mine]),
            "peak_rss_max_mib": max(r.peak_rss_mib for r in mine),
            "sim_cpu_s": measure.median([r.sim_cpu for r in mine]),
            "weed_cpu_s": measure.median([r.weed_cpu for r in mine]),
            "main_thread_cpu_s": measure.median([r.main_thread_cpu for r in mine]),
            "other_threads_cpu_s": measure.median([r.other_threads_cpu for r in mine]),
            "others_cpu_s": measure.median([r.others_cpu for r in mine]),
            # What a run costs the machine: the command, the simulator and SeaweedFS.
            # Less sensitive to others' load than wall time; on a saturated 2-core
            # machine the wall time tends to half of it.
            "total_cpu_s": measure.median([r.cpu + r.sim_cpu + r.weed_cpu for r in mine]),
        }
        legs[leg]["provider_requests_per_recording"] = measure.median(
            [r.provider_requests / objects for r in mine]
        )
        counted = [r.storage_requests / objects for r in mine if r.storage_requests is not None]
        if counted:
            legs[leg]["storage_requests_per_recording"] = measure.median(counted)
        inner = [r.inner for r in mine if r.inner is not None]
        if inner:
            legs[leg]["inner_s"] = measure.median(inner)
        quiet = [r.wall for r in mine if is_quiet(r)]
        legs[leg]["quiet_runs"] = len(quiet)
        if quiet:
            legs[leg]["wall_quiet_s"] = measure.median(quiet)
    ratios: dict[str, float] = {}
    if "archiver" in legs and "rclone" in legs:
        ratios["archiver_vs_rclone"] = legs["archiver"]["wall_s"] / legs["rclone"]["wall_s"]
    if "archiver" in legs and "put" in legs:
        ratios["archiver_vs_put"] = legs["archiver"]["wall_s"] / legs["put"]["wall_s"]
    if "archiver" in legs and "rclone" in legs:
        ratios["archiver_vs_rclone_cpu_per_recording"] = (
            legs["archiver"]["cpu_ms_per_recording"] / legs["rclone"]["cpu_ms_per_recording"]
        )
    for leg in legs:
        if leg.startswith("archiver:") and "archiver" in legs:
            ratios[f"{leg}_vs_archiver"] = legs[leg]["wall_s"] / legs["archiver"]["wall_s"]
    if "archiver" in legs and "put-shaped" in legs:
        ratios["archiver_vs_put_shaped"] = legs["archiver"]["wall_s"] / legs["put-shaped"]["wall_s"]
    for ours in (leg for leg in legs if leg.startswith("archiver")):
        for other in ("rclone", "put"):
            if other in legs:
                ratios[f"{ours}_vs_{other}_total_cpu"] = (
                    legs[ours]["total_cpu_s"] / legs[other]["total_cpu_s"]
                )
                if ours != "archiver":
                    ratios[f"{ours}_vs_{other}"] = legs[ours]["wall_s"] / legs[other]["wall_s"]
    for other in ("rclone", "put"):
        if "wall_quiet_s" in legs.get("archiver", {}) and "wall_quiet_s" in legs.get(other, {}):
            ratios[f"archiver_vs_{other}_quiet"] = (
                legs["archiver"]["wall_quiet_s"] / legs[other]["wall_quiet_s"]
            )
    return {"legs": legs, "ratios": ratios, "runs": [asdict(r) for r in runs]}
