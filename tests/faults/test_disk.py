"""The local storage's disk fills up, or its folder turns read-only, while ``archiver
run`` archives: one line per recording that could not be written, no temporary
file left, the run stays up and unready, and it archives everything once space
(or writes) return.

Root only: as root, file modes do not stop a write, so the tests mount a 2 MiB
tmpfs, or a bind mount remounted read-only (and unmount it on the way out).
On the code before issue 22 both fail: the probe did not look at free space,
so /readyz stayed 200 on a full disk, and there was no archiver_storage_available
gauge nor a lag warning naming the storage.
"""

from __future__ import annotations

import os

import pytest

from tests.support.fault_run import OUTAGE
from tests.support.fault_scenarios import disk_fault


@pytest.mark.parametrize("kind", ["full", "read-only"])
async def test_local_disk(tmp_path, kind):
    if os.geteuid() != 0:
        pytest.fail("the disk faults mount a tmpfs and a bind mount: run the tests as root")
    await disk_fault(kind, tmp_path=tmp_path, outage=OUTAGE)
