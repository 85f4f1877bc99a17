"""A full ``archiver verify`` in bounded memory: twice the calls, about the same peak RSS.

Two archives in the service's shape (tests/support/shape: manifest objects of
about 4 lines, several writers, a leader change, sealed legacy lines) on a
local folder, 20,000 and 40,000 calls; the CLI's own peak RSS (its VmHWM,
with the scratch file's page cache at 1 MiB: tests/support/peak_cli.py says
why) must differ by less than ``BOUND``. Before the scratch file (issue 25)
verify held about 6.3 KB a call to the end: 120 MiB more for the second
archive (189 -> 309 MiB). Before the chain's walk and the listing went to the
scratch file (``e051359``) it grew by about 5.6 MiB here (78.9 -> 84.5 MiB):
this test fails on that code; since, by less than 1 MiB.

Until then the test read ``wait4``'s ``ru_maxrss``, which Linux carries over
from the parent (this test, about 90-100 MiB after generating the archive):
its 90 and 100 MiB were the test's own peak, not verify's.

On demand (``-m ondemand``): writing the archives and two verifies take one
to four minutes on two cores, with the load.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from archiver.storage.local import LocalStore
from tests.support.cli import cli_env
from tests.support.shape.generate import generate
from tests.support.shape.plan import Shape

pytestmark = [pytest.mark.ondemand, pytest.mark.timeout(900)]

MIB = 1024 * 1024
BOUND = 2 * MIB
PEAK_CLI = Path(__file__).parents[1] / "support" / "peak_cli.py"


def _peak_rss_of_verify(root: Path, calls: int) -> int:
    archive = root / f"archive-{calls}"
    asyncio.run(generate(LocalStore(archive), Shape(calls), 32, 64, progress=False))
    scratch = root / f"scratch-{calls}"
    scratch.mkdir()
    env = cli_env(
        {
            "ARCHIVER_STORAGE__URL": str(archive),
            "ARCHIVER_STATE__URL": str(root / f"state-{calls}.sqlite3"),
            "ARCHIVER_SCRATCH_DIR": str(scratch),
            "ARCHIVER_OPERATOR": "memory-test",
        }
    )
    peak = root / f"peak-{calls}"
    with (root / f"verify-{calls}.out").open("w+") as out:
        subprocess.run(  # noqa: S603 (our own argument list)
            [sys.executable, str(PEAK_CLI), str(peak), "verify"],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        out.seek(0)
        said = out.read()
    # The generated archive has sealed legacy lines: nothing wrong, not all proven (exit 5).
    assert "nothing found wrong" in said, said[-3000:]
    assert f"verified {calls} object(s)" in said, said[-3000:]
    assert list(scratch.iterdir()) == []  # the scratch file went with the command
    return int(peak.read_text(encoding="ascii"))


def test_twice_the_calls_about_the_same_peak_memory(tmp_path: Path) -> None:
    small = _peak_rss_of_verify(tmp_path, 20_000)
    large = _peak_rss_of_verify(tmp_path, 40_000)
    print(f"\nverify peak RSS: {small / MIB:.0f} MiB at 20k calls, {large / MIB:.0f} MiB at 40k")
    assert large - small < BOUND, (
        f"verify's peak RSS grew by {(large - small) / MIB:.0f} MiB from 20k to 40k calls "
        f"({small / MIB:.0f} -> {large / MIB:.0f} MiB; bound {BOUND / MIB:.0f} MiB)"
    )
