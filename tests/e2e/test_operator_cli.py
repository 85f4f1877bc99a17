"""A new operator's first week (issue 21): what the CLI says, as a subprocess against
the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.simulator import Simulator
from tests.support.cli import QUICK, archiver_env, run_cli

SINCE, UNTIL = "2021-02-17", "2021-02-18"
pytestmark = pytest.mark.sim(seed=4, calls=5, recording_fraction=1.0, max_size=40_000)


async def test_a_wrong_token_on_a_range_already_archived_is_refused(
    sim: Simulator, tmp_path: Path
) -> None:
    env = archiver_env(tmp_path, sim=sim, tuning=QUICK)
    first = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert first.code == 0, first.err
    wrong = env | {"ARCHIVER_SOURCE__TOKEN": "not-the-token-xyz"}
    r = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=wrong, cwd=tmp_path)
    assert r.code == 1, (r.out, r.err)
    assert r.err.strip().splitlines()[-1].startswith("archiver: authentication failed")
    assert "not-the-token-xyz" not in r.out + r.err
    assert "Traceback" not in r.err
    # The right token on the same range: one request, nothing listed again.
    again = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert again.code == 0, again.err
    assert "listed 0 CDR(s)" in again.out
