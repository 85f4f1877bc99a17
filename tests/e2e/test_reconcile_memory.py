"""``archiver reconcile``'s memory does not grow with the CDRs of the range (issue 25).

Two archives in the service's shape (tests/support/shape) of 20,000 and 60,000
calls, each reconciled whole against the simulator serving the same calls, the
CLI as a subprocess: its peak RSS (the kernel's high-water mark) may differ by
less than 12 MiB. The comparison of the old code kept about 940 bytes a CDR in
dicts: 37 MiB more for the 40,000 more CDRs. What the scratch file's page cache
may add as it fills (at most 16 MiB, reached near 100,000 CDRs) is a few MiB
here. On demand: the archives take a minute or two to write.
"""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from archiver.settings import StorageSettings
from archiver.simulator import Simulator
from archiver.storage import open_store
from tests.support.cli import cli_env, source_env
from tests.support.shape.generate import generate
from tests.support.shape.plan import START, Shape, sim_config

pytestmark = [pytest.mark.ondemand, pytest.mark.timeout(1200)]

MIB = 1024 * 1024
# Runs the CLI, then says its peak RSS (KiB on Linux) on the last line of stderr.
PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run([sys.executable, '-m', 'archiver', *sys.argv[1:]])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'peak_rss_kib={peak}', file=sys.stderr)\n"
    "sys.exit(done.returncode)\n"
)


async def _peak_rss(calls: int, tmp_path: Path) -> int:
    import asyncio

    shape = Shape(calls=calls, per_day=20_000, legacy=0)
    root = tmp_path / f"archive-{calls}"
    async with open_store(StorageSettings(url=str(root))) as store:
        await generate(store, shape, concurrency=16, head_every=64, progress=False)
    end = START + shape.span
    sim = Simulator(sim_config(shape), window=(START, end))
    env = cli_env({"ARCHIVER_STORAGE__URL": str(root), "ARCHIVER_OPERATOR": "ci"})
    span = ["--since", START.date().isoformat(), "--until", (end + timedelta(days=1)).date().isoformat()]  # fmt: skip  # noqa: E501
    async with sim.serve() as base:
        env |= {**source_env(base, sim), "ARCHIVER_SOURCE__RATE_LIMIT": "0"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", PEAK, "reconcile", *span, env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 600)
    text = out.decode()
    assert proc.returncode == 0, text[-2000:] + err.decode()[-2000:]
    assert re.search(rf"^TOTAL .*cdrs={calls} with_recording={calls} archived={calls}", text, re.M)
    peak = re.search(r"peak_rss_kib=(\d+)", err.decode())
    assert peak is not None, err.decode()[-2000:]
    return int(peak[1]) * 1024


async def test_reconcile_memory_does_not_grow_with_the_cdrs(tmp_path: Path) -> None:
    small = await _peak_rss(20_000, tmp_path)
    large = await _peak_rss(60_000, tmp_path)
    print(f"reconcile peak RSS: 20k {small / MIB:.0f} MiB, 60k {large / MIB:.0f} MiB")
    assert large - small < 12 * MIB, (small / MIB, large / MIB)
