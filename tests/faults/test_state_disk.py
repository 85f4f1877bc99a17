"""The SQLite state's disk fills up while ``archiver run`` archives: the run must say
so in one line, stay up, and archive everything once when space returns.

Today (archiver/state/sqlite) ``sqlite3.OperationalError: database or disk is
full`` ends the run with a traceback. Riding it out is the state's work (issue
22 item 1, the `state` engineer: reconnect, retry, readiness false meanwhile);
this test is its acceptance, strict xfail until then: once it passes, remove
the mark.
"""

from __future__ import annotations

import os

import pytest

from tests.support.fault_run import OUTAGE
from tests.support.fault_scenarios import state_disk_full


@pytest.mark.xfail(
    reason="issue 22 item 1 (state): a full SQLite disk ends the run today", strict=True
)
async def test_sqlite_state_disk_full(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the disk faults mount a tmpfs: run the tests as root")
    await state_disk_full(tmp_path=tmp_path, outage=OUTAGE)
