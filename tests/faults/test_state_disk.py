"""The SQLite state's disk fills up while ``archiver run`` archives: the run must say
so in one line, stay up, and archive everything once when space returns.

Before issue 22 item 1, ``sqlite3.OperationalError: database or disk is full``
ended the run with a traceback; the state now rides it out (archiver/state/outage.py:
the failed transaction was rolled back whole and is run again once space returns;
readiness false meanwhile). This test is that work's acceptance.
"""

from __future__ import annotations

import os

import pytest

from tests.support.fault_run import OUTAGE
from tests.support.fault_scenarios import state_disk_full


async def test_sqlite_state_disk_full(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the disk faults mount a tmpfs: run the tests as root")
    await state_disk_full(tmp_path=tmp_path, outage=OUTAGE)
