"""The provider's API refuses, or accepts connections and never answers, while
``archiver run`` polls: the run stays up, /readyz says the source is not reached,
and every recording (calls that arrived during the fault included) is archived
exactly once within RECOVERY_BOUND seconds after the fault ends.

These pass on the code before issue 22 too, and could not be made to fail
there: API requests were already bounded by the connect and read timeouts
(what the issue found working). They pin that behaviour; the new
whole-request deadline (ARCHIVER_SOURCE__REQUEST_TIMEOUT) is tested in
tests/integration/test_deadlines.py against a server that trickles.
"""

from __future__ import annotations

import pytest

from tests.support.fault_run import OUTAGE
from tests.support.fault_scenarios import provider_fault


@pytest.mark.parametrize("kind", ["refuse", "hang"])
async def test_provider_api_away(tmp_path, kind):
    await provider_fault(kind, tmp_path=tmp_path, outage=OUTAGE)
