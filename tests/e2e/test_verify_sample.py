"""``archiver verify --sample N|P% [--seed S]`` as a subprocess: the chain and every
manifest object in full, a seeded random sample of the recordings, and the confidence
the sample gives; an altered recording is caught when (and only when) it is sampled."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.retrieval.sampling import Sample, upper_bound
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from tests.support.cli import cli_env, run_cli
from tests.support.pipeline import backfill, make_settings, read_archive

CALLS = 24


@pytest.fixture
async def archive(tmp_path: Path) -> tuple[Simulator, StorageSettings, dict[str, str], Path]:
    """A local archive of CALLS recordings, and a fresh machine's environment."""
    sim = Simulator(
        SimConfig(seed=25, calls=CALLS, recording_fraction=1.0, min_size=4_000, max_size=20_000)
    )
    storage = StorageSettings(url=str(tmp_path / "archive"))
    builder = tmp_path / "builder"
    builder.mkdir()
    async with sim.serve() as base:
        await backfill(make_settings(sim, base, storage, str(builder / "state.sqlite3")), sim)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env = cli_env(
        {
            "ARCHIVER_STORAGE__URL": storage.url,
            "ARCHIVER_STATE__URL": str(fresh / "state.sqlite3"),
        }
    )
    return sim, storage, env, fresh


def _seeds(key: str, share: float) -> tuple[str, str]:
    """A seed whose sample holds ``key`` and one whose sample does not."""
    within = without = None
    for n in range(500):
        sample = Sample.parse(f"{share * 100:g}%", f"seed-{n}")
        if sample.chosen_key(key):
            within = within or f"seed-{n}"
        else:
            without = without or f"seed-{n}"
        if within and without:
            return within, without
    raise AssertionError("no pair of seeds found")


async def test_a_sampled_verify_catches_an_altered_recording_when_it_is_sampled(archive) -> None:
    sim, storage, env, fresh = archive
    lines = (await read_archive(storage)).lines
    assert len(lines) == CALLS
    target = lines[5]["object_key"]
    path = Path(storage.url) / target
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    within, without = _seeds(target, 0.25)

    caught = await run_cli("verify", "--sample", "25%", "--seed", within, env=env, cwd=fresh)
    assert caught.code == 5, caught.out + caught.err
    assert any(line.startswith("CORRUPT") and target in line for line in caught.out.splitlines()), (
        caught.out
    )
    sample_line = next(x for x in caught.out.splitlines() if x.startswith("sample: "))
    assert f"--seed {within}), 1 bad" in sample_line

    again = await run_cli("verify", "--sample", "25%", "--seed", within, env=env, cwd=fresh)
    assert (again.code, again.out) == (caught.code, caught.out)  # the same seed, the same sample

    missed = await run_cli("verify", "--sample", "25%", "--seed", without, env=env, cwd=fresh)
    assert missed.code == 0, missed.out + missed.err
    assert "CORRUPT" not in missed.out
    assert "all intact" not in missed.out  # a sample proves no recording it did not check
    assert "nothing found wrong in the sample" in missed.out
    line = next(x for x in missed.out.splitlines() if x.startswith("sample: "))
    checked = int(line.split()[1])
    assert 0 < checked < CALLS
    bound = upper_bound(checked, 0)
    assert f"sample: {checked} of {CALLS} recording(s) checked" in line
    assert f"0 bad; at 95% confidence at most {bound * 100:.1f}% of the {CALLS}" in line

    full = await run_cli("verify", env=env, cwd=fresh)
    assert full.code == 5
    assert "sample:" not in full.out


async def test_a_count_sample_checks_that_many_and_states_the_confidence(archive) -> None:
    sim, storage, env, fresh = archive
    result = await run_cli("verify", "--sample", "10", env=env, cwd=fresh)
    assert result.code == 0, result.out + result.err
    line = next(x for x in result.out.splitlines() if x.startswith("sample: "))
    assert line.startswith(f"sample: 10 of {CALLS} recording(s) checked (--sample 10 --seed ")
    assert "0 bad; at 95% confidence at most 25.9% of the 24 recordings are bad (at most 7)" in line
    assert "verified 10 object(s)" in result.out
    # The seed printed reproduces the run.
    seed = line.split("--seed ", 1)[1].split(")", 1)[0]
    again = await run_cli("verify", "--sample", "10", "--seed", seed, env=env, cwd=fresh)
    assert again.out == result.out

    whole = await run_cli("verify", "--sample", "100%", env=env, cwd=fresh)
    assert whole.code == 0
    assert f"sample: {CALLS} of {CALLS} recording(s) checked" in whole.out
    assert "every recording in the range was checked" in whole.out


async def test_a_sampled_verify_still_walks_every_manifest_object(archive) -> None:
    sim, storage, env, fresh = archive
    manifests = sorted((Path(storage.url) / "manifests").rglob("*.jsonl"))
    assert manifests
    victim = manifests[0]
    victim.write_bytes(victim.read_bytes() + b"\n")  # one byte more: not the chained object
    result = await run_cli("verify", "--sample", "1", "--seed", "x", env=env, cwd=fresh)
    assert result.code == 5, result.out + result.err
    assert victim.name in result.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample", "0"], "--sample '0': a count from 1 to 1,000,000"),
        (["--sample", "2000000"], "--sample '2000000': a count from 1 to 1,000,000"),
        (["--sample", "1.5"], "--sample '1.5': a count from 1 to 1,000,000"),
        (["--sample", "0%"], "--sample '0%': a share over 0% and up to 100%"),
        (["--sample", "101%"], "--sample '101%': a share over 0% and up to 100%"),
        (["--sample", "-3"], "--sample '-3': a count (500) or a share (2%)"),
        (["--sample", "abc"], "--sample 'abc': a count (500) or a share (2%)"),
        (["--sample", "5", "--seed", ""], "--seed: 1 to 200 printable characters"),
        (["--seed", "x"], "--seed: only with --sample"),
    ],
)
async def test_bad_sample_options_are_refused_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    env = cli_env({"ARCHIVER_STORAGE__URL": str(tmp_path / "archive")})
    result = await run_cli("verify", *args, env=env, cwd=tmp_path)
    assert result.code == 2, result.out + result.err
    assert result.err.strip() == f"archiver: usage error: {message}"
    assert not (tmp_path / "archive").exists()
