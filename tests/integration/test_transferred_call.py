"""A transferred call: two CDRs share one sip_call_id on one day, and both recordings
are archived under the default key template, and both are found by ``get``."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from tests.support.cli import cli_env, run_cli, s3_storage_env
from tests.support.pipeline import backfill, make_settings, read_archive


def _transferred(sim: Simulator) -> tuple[str, str, str]:
    """Give a call the sip_call_id of an earlier one with the same audio type on the
    same day (their default keys then collide); (sip_call_id, cdr a, cdr b)."""
    first = sim.calls[0]
    i, second = next(
        (i, c)
        for i, c in enumerate(sim.calls)
        if i and c.fmt == first.fmt and c.started_at.date() == first.started_at.date()
    )
    sim.calls[i] = dataclasses.replace(second, sip_call_id=first.sip_call_id)
    return first.sip_call_id, first.cdr_id, second.cdr_id


@pytest.fixture(params=["local", "s3"])
async def storage(request, tmp_path, make_bucket, s3_settings, s3_env):
    """(storage settings, the CLI's storage environment)."""
    if request.param == "local":
        local = StorageSettings(url=str(tmp_path / "archive"))
        return local, {"ARCHIVER_STORAGE__URL": local.url}
    s3 = s3_settings(await make_bucket())
    return s3, s3_storage_env(s3, s3_env)


async def test_a_transferred_call_keeps_both_recordings(storage, tmp_path: Path) -> None:
    settings_storage, env = storage
    sim = Simulator(SimConfig(seed=9, calls=6, recording_fraction=1.0, max_size=60_000))
    sip, cdr_a, cdr_b = _transferred(sim)
    state = tmp_path / "state.sqlite3"
    async with sim.serve() as base:
        settings = make_settings(sim, base, settings_storage, str(state))
        stats, counts = await backfill(settings, sim)
    assert counts["archived"] == 6, (counts, dict(stats.failure_reasons))
    assert counts["failed"] == 0

    contents = await read_archive(settings_storage)
    shared = {line["cdr_id"]: line for line in contents.lines if line["sip_call_id"] == sip}
    assert set(shared) == {cdr_a, cdr_b}
    keys = {line["object_key"] for line in shared.values()}
    assert len(keys) == 2, "both recordings under one key"
    assert any("~" in key for key in keys)
    by_cdr = {c.cdr_id: c for c in sim.calls}
    for cdr, line in shared.items():
        assert line["sha256"] == by_cdr[cdr].sha256()
    assert len(contents.lines) == 6
    assert len(contents.recordings) == 6

    out = tmp_path / "out"
    out.mkdir()
    cli = cli_env(env | {"ARCHIVER_STATE__URL": str(tmp_path / "fresh.sqlite3")})
    ambiguous = await run_cli("get", sip, "-o", str(out / "x.wav"), env=cli, cwd=tmp_path)
    assert ambiguous.code == 2, ambiguous.err
    assert cdr_a in ambiguous.err
    assert cdr_b in ambiguous.err
    for cdr in (cdr_a, cdr_b):
        target = out / f"{cdr}.bin"
        got = await run_cli("get", cdr, "-o", str(target), env=cli, cwd=tmp_path)
        assert got.code == 0, got.err
        assert hashlib.sha256(target.read_bytes()).hexdigest() == by_cdr[cdr].sha256()
