"""The state database away for a full minute under two ``archiver run`` replicas.

    python -m tests.bench.state_outage [--outage 60]

Runs the fault suite's database restart tests (tests/faults/test_database.py,
PostgreSQL stopped ``fast`` and ``immediate``) with a longer outage, and prints
what they measured: when /readyz said the state was unreachable, how long the
database was away, and how long after its return every recording was archived
(the lag bound is a minute). The tests' own assertions hold as in CI: no replica
exits, each recording is archived once, ``verify`` exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    """Run the long outage and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the database is away")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        figures = Path(work) / "figures.jsonl"
        env = {
            **os.environ,
            "ARCHIVER_FAULT_OUTAGE": f"{args.outage:g}",
            "ARCHIVER_BENCH_FIGURES": str(figures),
        }
        test = "tests/faults/test_database.py::test_two_replicas_ride_out_a_database_restart"
        ran = subprocess.run(  # noqa: S603 - our own test run
            [sys.executable, "-m", "pytest", "-q", test, "--timeout", "600"],
            env=env,
            check=False,
        )
        rows = (
            [json.loads(line) for line in figures.read_text().splitlines()]
            if figures.exists()
            else []
        )
    print(f"\n{'fault':<46} {'away s':>7} {'unready after s':>16} {'all archived after s':>21}")
    for row in rows:
        print(
            f"{row['fault']:<46} {row['outage_s']:>7} {row['unready_after_s']:>16}"
            f" {row['all_archived_after_s']:>21}"
        )
    return ran.returncode


if __name__ == "__main__":
    sys.exit(main())
