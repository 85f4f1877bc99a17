"""``reconcile --fix`` repairs a call the state believes archived but no manifest line names
(issue 20, item 5): the CLI as a subprocess, on the builder's own state, on SeaweedFS and a
local directory.

An insider cuts the newest batch from the chain (its manifest object and link
deleted, the head moved back): the state still says its calls are archived,
so the pipeline would not archive them again. ``--fix`` re-proves each stored
object against the line the state kept and writes the lines again under a
chain of its own, says so, and the range is then complete; ``verify`` finds
no orphan left. A recording altered meanwhile is not re-lined: FAILED, with
the reason, exit 5.
"""

from __future__ import annotations

import pytest

from tests.e2e.readside_support import KINDS, Insider, several_batches
from tests.support.cli import run_cli, source_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.sim(seed=20, calls=6, recording_fraction=1.0, max_size=40_000),
]
NOW = {"ARCHIVER_ORPHAN_MARGIN": "0"}


@pytest.fixture(params=KINDS)
async def archive(request, tmp_path, make_bucket, s3_settings, seaweed, sim) -> Insider:
    return await several_batches(request.param, tmp_path, make_bucket, s3_settings, seaweed, sim)


def _reconcile_env(archive: Insider, sim, tmp_path) -> dict[str, str]:
    return {
        **archive.env,
        **source_env(sim.base_url, sim),
        "ARCHIVER_SOURCE__TIMEZONE": sim.config.timezone,
        "ARCHIVER_SOURCE__RATE_LIMIT": "0",
        "ARCHIVER_STATE__URL": str(tmp_path / "builder" / "state.sqlite3"),
        **NOW,
    }


def _range(sim) -> tuple[str, str]:
    start = sim.config.start
    return start.isoformat(), (start + sim.config.span).isoformat()


async def test_fix_relines_the_calls_the_state_believes_archived(archive, sim, tmp_path):
    _, cut = await archive.truncate()
    env = _reconcile_env(archive, sim, tmp_path)
    since, until = _range(sim)
    before = await run_cli("reconcile", "--since", since, "--until", until, env=env, cwd=tmp_path)
    assert before.code == 5, before.out + before.err
    missing = [row for row in before.out.splitlines() if row.startswith("MISSING ")]
    assert len(missing) == len(cut)

    fixed = await run_cli(
        "reconcile", "--since", since, "--until", until, "--fix", env=env, cwd=tmp_path
    )
    assert fixed.code == 0, fixed.out + fixed.err
    assert f"re-proved {len(cut)} stored object(s) and wrote their line(s) again" in fixed.err
    assert [row for row in fixed.out.splitlines() if row.startswith("FIXED ")]
    assert "COMPLETE" in fixed.out

    lines = await archive.lines()
    relined = [line for line in lines if "-repair-" in line["_manifest"]]
    assert sorted(line["cdr_id"] for line in relined) == sorted(line["cdr_id"] for line in cut)
    for line in relined:  # the very lines the state kept: hash, size, proof
        original = next(c for c in cut if c["cdr_id"] == line["cdr_id"])
        assert {k: v for k, v in line.items() if k != "_manifest"} == {
            k: v for k, v in original.items() if k != "_manifest"
        }
    verify = await run_cli("verify", env=env, cwd=tmp_path)
    assert "ORPHAN" not in verify.out, verify.out
    got = await run_cli(
        "get", cut[0]["cdr_id"], "-o", str(tmp_path / "r.wav"), env=env, cwd=tmp_path
    )
    assert got.code == 0, got.err


async def test_fix_refuses_to_reline_an_altered_recording(archive, sim, tmp_path):
    _, cut = await archive.truncate()
    victim = cut[0]
    key = archive.relative(str(victim["object_key"]))
    data = await archive.read(key)
    await archive.put(key, data[:-1] + bytes([data[-1] ^ 0xFF]))
    env = _reconcile_env(archive, sim, tmp_path)
    since, until = _range(sim)
    fixed = await run_cli(
        "reconcile", "--since", since, "--until", until, "--fix", env=env, cwd=tmp_path
    )
    assert fixed.code == 5, fixed.out + fixed.err
    failed = [row for row in fixed.out.splitlines() if row.startswith("FAILED ")]
    assert len(failed) == 1
    assert victim["cdr_id"] in failed[0]
    assert "not re-proven" in failed[0]
    assert "not re-lined" in fixed.err
