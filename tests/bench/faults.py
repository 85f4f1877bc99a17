"""``python -m tests.bench.faults [--outage 40] [--only storage-hang,...] [--code REF]``:
the fault scenarios of tests/faults/ at full length.

Each scenario runs ``archiver run`` as a subprocess, injects its fault for
``--outage`` seconds (40 by default, the issue's hung storage) while calls
arrive, and measures how long after the fault's end every recording was
archived and /readyz answered 200 again; the scenario's own checks (run stays
up, readiness follows, exactly once, verify exits 0) hold as in CI. ``--code``
measures another commit's ``archiver/`` (see tests/bench/servers.py), which
shows what the same fault cost before. Needs root for the disk scenarios.
Results go to tests/bench/results/faults-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.servers import use_code
from tests.support import fault_run as harness
from tests.support.fault_run import Figures
from tests.support.seaweed import SeaweedProcess, SeaweedServer, admin_client

RESULTS = Path(__file__).parent / "results"
SCENARIOS = (
    "storage-hang",
    "storage-refuse",
    "provider-hang",
    "provider-refuse",
    "disk-full",
    "disk-read-only",
)


async def _bucket(server: SeaweedServer) -> str:
    name = f"bench-faults-{int(time.time() * 1000)}"
    async with admin_client(server) as client:
        await client.create_bucket(Bucket=name)
    return name


async def _one(name: str, server: SeaweedServer, work: Path, outage: float) -> Figures:
    from tests.support import fault_scenarios as scenarios

    tmp = work / name
    tmp.mkdir()
    part, _, kind = name.partition("-")
    run: Callable[[], Awaitable[Figures]]
    if part == "storage":
        bucket = await _bucket(server)
        size = scenarios.BIG if kind == "hang" else None

        def run() -> Awaitable[Figures]:
            return scenarios.storage_fault(
                kind,  # type: ignore[arg-type]
                seaweed=server,
                bucket=bucket,
                tmp_path=tmp,
                outage=outage,
                size=size,
            )
    elif part == "provider":

        def run() -> Awaitable[Figures]:
            return scenarios.provider_fault(kind, tmp_path=tmp, outage=outage)  # type: ignore[arg-type]
    else:

        def run() -> Awaitable[Figures]:
            return scenarios.disk_fault(kind, tmp_path=tmp, outage=outage)

    return await run()


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; print and save their figures."""
    p = argparse.ArgumentParser(prog="python -m tests.bench.faults", description=__doc__)
    p.add_argument("--outage", type=float, default=40.0, help="seconds each fault lasts")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma list of scenarios")
    p.add_argument("--code", default="tree", help="the archiver to measure (tree, a commit)")
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    # A 40-second outage must still recover within the minute, with the
    # production timeouts (10 s connect, 30 s read, 120 s per API request, 64 KiB/s),
    # not CI's short ones.
    harness.RECOVERY_BOUND = 60.0
    harness.SHOWS_WITHIN = 90.0
    for name in (
        "ARCHIVER_SOURCE__CONNECT_TIMEOUT",
        "ARCHIVER_SOURCE__READ_TIMEOUT",
        "ARCHIVER_SOURCE__REQUEST_TIMEOUT",
        "ARCHIVER_STORAGE__CONNECT_TIMEOUT",
        "ARCHIVER_STORAGE__READ_TIMEOUT",
        "ARCHIVER_STORAGE__MIN_THROUGHPUT",
    ):
        harness.TUNING.pop(name, None)
    os.environ.update({"AWS_EC2_METADATA_DISABLED": "true"})
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        work = Path(tmp)
        code = use_code(args.code, work)
        process = SeaweedProcess(work / "seaweed")
        (work / "seaweed").mkdir()
        server = process.start()
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": server.access_key,
                "AWS_SECRET_ACCESS_KEY": server.secret_key,
                "AWS_DEFAULT_REGION": server.region,
            }
        )
        try:
            for name in names:
                started = time.monotonic()
                try:
                    figures = asyncio.run(_one(name, server, work, args.outage))
                    row: dict[str, object] = {"ok": True, **asdict(figures)}
                except Exception as exc:  # noqa: BLE001 - a failed scenario is a figure too
                    traceback.print_exc()
                    row = {"ok": False, "scenario": name, "error": str(exc)[:2000]}
                row["wall"] = round(time.monotonic() - started, 1)
                results.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "notes"}), flush=True)
        finally:
            process.stop()
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"faults-{stamp}.json"
    meta = {"code": code, "outage": args.outage, "machine": platform.platform()}
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"\n{code}, outage {args.outage:g}s ({out})")
    for row in results:
        if row["ok"]:
            print(
                f"  {row['scenario']:<22} archived {row['archived']} in "
                f"{row['recovered_in']:.1f}s after the fault, ready again in "
                f"{row['ready_again_in']:.1f}s"
            )
        else:
            print(f"  {row['scenario']:<22} FAILED: {str(row['error']).splitlines()[0][:150]}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
