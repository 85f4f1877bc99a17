"""``python -m tests.bench.container [--runs N]``: the image's size and start-up time.

Builds docker/Dockerfile on the Debian base as the container tier does
(tests/support/podman.py), then starts ``archiver run`` from it N times (5)
against the simulator on loopback, with a local archive on its state volume,
and times from ``podman run`` to the first 200 of /healthz and of /readyz.
Prints the figures docs/deployment.md quotes, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from archiver.simulator import SimConfig, Simulator
from tests.support.cli import source_env
from tests.support.podman import (
    BASE_IMAGE,
    build,
    ensure_base,
    image_tag,
    podman,
    run_command,
    write_env_file,
)
from tests.support.seaweed import free_ports


async def _status(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            return r.status
    except aiohttp.ClientError:
        return 0


async def _one_start(image: str, sim: Simulator, workdir: Path) -> dict[str, float]:
    [port] = free_ports(1)
    name = f"archiver-bench-{uuid.uuid4().hex[:8]}"
    env = {
        **source_env(sim.base_url, sim),
        "ARCHIVER_STORAGE__URL": "/var/lib/archiver/archive",
        "ARCHIVER_SERVICE__PORT": str(port),
        "ARCHIVER_LOOKBACK": "3600",
    }
    env_file = write_env_file(workdir / f"{name}.env", env)
    await podman("podman", "volume", "create", name)
    times: dict[str, float] = {}
    started = time.monotonic()
    try:
        done = await podman(*run_command(name, image, env_file=env_file, volume=name))
        assert done.code == 0, done.err
        while len(times) < 2 and time.monotonic() - started < 120:
            for path in ("healthz", "readyz"):
                if path not in times and await _status(f"http://127.0.0.1:{port}/{path}") == 200:
                    times[path] = time.monotonic() - started
            await asyncio.sleep(0.05)
    finally:
        await podman("podman", "rm", "--force", "--volumes", "--time", "0", name)
        await podman("podman", "volume", "rm", "--force", name)
    return times


async def _starts(image: str, runs: int) -> list[dict[str, float]]:
    sim = Simulator(SimConfig(seed=3, calls=0))
    with tempfile.TemporaryDirectory() as tmp:
        async with sim.serve():
            return [await _one_start(image, sim, Path(tmp)) for _ in range(runs)]


def _size(image: str) -> int:
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.split()[0])


def main() -> None:
    """Build, measure, print JSON."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.container")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = ensure_base()
    t0 = time.monotonic()
    image = build(image_tag(), base=base)
    build_seconds = time.monotonic() - t0
    starts = asyncio.run(_starts(image, args.runs))
    result: dict[str, Any] = {
        "image": image,
        "image_bytes": _size(image),
        "base_bytes": _size(BASE_IMAGE),
        "build_seconds_with_cache": round(build_seconds, 1),
        "runs": starts,
    }
    for path in ("healthz", "readyz"):
        values = [run[path] for run in starts if path in run]
        result[f"{path}_median_seconds"] = round(statistics.median(values), 2) if values else None
        result[f"{path}_max_seconds"] = round(max(values), 2) if values else None
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
