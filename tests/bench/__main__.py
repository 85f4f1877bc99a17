"""``python -m tests.bench [--quick] [--only LEG,...]``: the benchmarks.

Legs:
  throughput  N recordings of one size: archiver backfill vs rclone copy vs a
              bare aiobotocore PUT loop, alternating, medians (default 2000 x 512 KiB,
              concurrency 16, 3 repetitions)
  big         one 300 MiB recording: the archiver's peak RSS
  many        20,000 CDRs with small recordings: RSS over the run (--many 100000
              for the issue's figure: about 25 minutes on 2 cores)
  state       1,000,000 CDRs in the state store: insert, dedup, lookup, `archiver status`
  get         `archiver get` from storage alone at 1,000,000 manifest entries
  latency     the throughput legs (archiver, rclone, bare PUT) with the storage behind a
              loopback proxy adding --latency-ms (default 20) to every request: where
              concurrency, not CPU, decides; the proxy counts each leg's storage requests
  profile     the archiver's throughput run under py-spy: where its CPU goes

By default: throughput, latency, big, profile (about 12 minutes); the scale legs run by
name: ``--only many`` and ``--only state,get`` (each under 10 minutes).
Results go to tests/bench/results/<UTC time>.json (git-ignored) and the
summary is printed. ``--quick`` shrinks every leg to a smoke run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from tests.bench import (
    get_scale,
    latency,
    memory,
    profile,
    report,
    servers,
    state_scale,
    throughput,
)

RESULTS = Path(__file__).parent / "results"
ALL_LEGS = ("throughput", "latency", "big", "many", "state", "get", "profile")
# Each run stays within about ten minutes on the 2-core machine: the scale legs
# (many, state, get) are asked for by name (--only many; --only state,get).
DEFAULT_LEGS = ("throughput", "latency", "big", "profile")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument(
        "--only",
        default=",".join(DEFAULT_LEGS),
        help=f"comma-separated legs to run (default {','.join(DEFAULT_LEGS)}; "
        f"all: {','.join(ALL_LEGS)})",
    )
    p.add_argument("--calls", type=int, help="throughput: recordings (default 2000; quick 200)")
    p.add_argument("--size", type=int, default=512 * 1024, help="throughput: bytes each")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument(
        "--per-host",
        type=int,
        help="ARCHIVER_PER_HOST_CONNECTIONS (default: = concurrency, as rclone has no such cap)",
    )
    p.add_argument(
        "--legs",
        default=",".join(throughput.LEGS),
        help=f"throughput legs (default {','.join(throughput.LEGS)}; the hot path's options, "
        f"the storage path alone: {','.join(throughput.HOT_PATH)}; the other parts alone: "
        f"{','.join(throughput.PARTS)},start-up)",
    )
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run, alternating, the archiver from DIR (a copy of the package with a "
        "change to try) as throughput leg archiver:NAME; repeatable",
    )
    p.add_argument("--reps", type=int, help="throughput repetitions (default 3; quick 1)")
    p.add_argument(
        "--latency-ms", type=float, default=20.0, help="latency: delay added per storage request"
    )
    p.add_argument("--many", type=int, help="many: CDRs (default 20000; quick 2000)")
    p.add_argument("--many-size", type=int, default=16 * 1024, help="many: bytes each")
    p.add_argument("--big-mib", type=int, help="big: MiB (default 300; quick 40)")
    p.add_argument("--state-calls", type=int, help="state: CDRs (default 1000000; quick 20000)")
    p.add_argument(
        "--get-calls", type=int, help="get: manifest entries (default 1000000; quick 20000)"
    )
    p.add_argument(
        "--code",
        default="HEAD",
        help="the archiver measured: a commit (default HEAD, exported), 'tree' (the working "
        "tree, uncommitted changes included), or a directory holding an archiver/ package",
    )
    p.add_argument(
        "--out", type=Path, help="results file (default tests/bench/results/<time>.json)"
    )
    return p.parse_args(argv)


def machine() -> dict[str, Any]:
    """What the figures were taken on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_avg_at_start": [round(x, 2) for x in psutil.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    legs = [leg.strip() for leg in args.only.split(",") if leg.strip()]
    unknown = sorted(set(legs) - set(ALL_LEGS))
    if unknown:
        print(f"unknown legs: {', '.join(unknown)} (known: {', '.join(ALL_LEGS)})", file=sys.stderr)
        return 2
    q = args.quick
    calls = args.calls or (200 if q else 2000)
    reps = args.reps or (1 if q else 3)
    per_host = args.per_host or args.concurrency
    variants = {}
    for item in args.compare:
        name, _, directory = item.partition("=")
        if not servers.is_code_dir(directory):
            print(f"--compare {item}: no archiver/ package in {directory}", file=sys.stderr)
            return 2
        variants[name] = Path(directory).resolve()
    throughput_legs = tuple(leg.strip() for leg in args.legs.split(",") if leg.strip())
    throughput_legs += tuple(f"archiver:{name}" for name in variants)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": q,
        "machine": machine(),
        "legs": legs,
    }

    def log(line: str) -> None:
        print(line, flush=True)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="archiver-bench-") as tmp:
        workdir = Path(tmp)
        results["code"] = servers.use_code(args.code, workdir)
        log(f"measuring the archiver of {results['code']}")
        with servers.seaweed(workdir / "weed") as (server, weed_pid):
            if {"throughput", "latency", "profile"} & set(legs):
                with servers.simulator(calls, args.size, workdir) as sim:
                    setup = throughput.Setup(
                        server, weed_pid, sim, workdir, args.concurrency, per_host, timeout=600,
                        variants=variants,
                    )  # fmt: skip
                    if "throughput" in legs:
                        log(
                            f"throughput: {calls} x {args.size // 1024} KiB, concurrency "
                            f"{args.concurrency}, {reps} repetition(s)"
                        )
                        runs = throughput.run_all(setup, reps, log, legs=throughput_legs)
                        results["throughput"] = {
                            "variants": {k: str(v) for k, v in variants.items()},
                            "calls": calls,
                            "size": args.size,
                            "concurrency": args.concurrency,
                            "per_host_connections": per_host,
                            "reps": reps,
                            **throughput.summarize(runs, args.size),
                        }
                    if "latency" in legs:
                        log(f"latency: {args.latency_ms:g} ms added to every storage request")
                        results["latency"] = {
                            "latency_ms": args.latency_ms,
                            "reps": reps,
                            **latency.run(setup, args.latency_ms, reps, log),
                        }
                    if "profile" in legs:
                        log("profile: the archiver's throughput run under py-spy")
                        results["profile"] = profile.run(setup, RESULTS, log)
            if "big" in legs:
                mib = args.big_mib or (40 if q else 300)
                log(f"big: one {mib} MiB recording")
                results["big"] = memory.run_big(server, workdir, mib, args.concurrency, log)
            if "many" in legs:
                # 100,000 (the figure) takes about 25 minutes here: --many 100000.
                n = args.many or (2000 if q else 20_000)
                log(f"many: {n} CDRs x {args.many_size // 1024} KiB")
                results["many"] = memory.run_many(
                    server, workdir, n, args.many_size, args.concurrency, log
                )
            if "get" in legs:
                n = args.get_calls or (20_000 if q else 1_000_000)
                log(f"get: an archive of {n} manifest entries")
                results["get"] = get_scale.run(server, workdir, n, log)
        if "state" in legs:
            n = args.state_calls or (20_000 if q else 1_000_000)
            log(f"state: {n} CDRs in the state store")
            results["state"] = state_scale.run(workdir, n, log)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    out = args.out or RESULTS / f"{results['started'].replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report.render(results))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
