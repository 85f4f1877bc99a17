"""The storage refuses, or accepts connections and never answers, while ``archiver run``
archives: the run stays up, /readyz follows the storage's probe, the lag warning
names the storage, and every recording is archived exactly once within
RECOVERY_BOUND seconds after the fault ends.

On the code before issue 22 both fail: /readyz answered 200 for ready_timeout
(180 s by default) after the probe failed, there was no archiver_storage_available
and no lag warning; and a hung storage held an upload for the 60-second read
timeout (a large one until the transfer's 30-minute deadline), past the bound.
"""

from __future__ import annotations

from tests.support.fault_run import OUTAGE
from tests.support.fault_scenarios import BIG, storage_fault
from tests.support.seaweed import MakeBucket, SeaweedServer


async def test_storage_refused(tmp_path, make_bucket: MakeBucket, seaweed: SeaweedServer, s3_env):
    figures = await storage_fault(
        "refuse", seaweed=seaweed, bucket=await make_bucket(), tmp_path=tmp_path, outage=OUTAGE
    )
    print(figures)


async def test_storage_hung_with_large_uploads_in_flight(
    tmp_path, make_bucket: MakeBucket, seaweed: SeaweedServer, s3_env
):
    figures = await storage_fault(
        "hang",
        seaweed=seaweed,
        bucket=await make_bucket(),
        tmp_path=tmp_path,
        outage=OUTAGE,
        size=BIG,
    )
    print(figures)
