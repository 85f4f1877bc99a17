"""``archiver rollup`` as a subprocess on a local folder in the service's shape (small
manifest objects): verify finds the same before and after, a second pass writes nothing,
an unfinished rollup (a crash after its entries) is finished, a broken chain is refused."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.manifest.rollup import parse_entries
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage.layout import ROLLUP_PREFIX
from tests.support.cli import DAEMON, archiver_env, cli_env, run_cli, start_cli
from tests.support.pipeline import backfill, make_settings

CALLS = 40


@pytest.fixture
async def archive(tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
    """A local archive of CALLS recordings in manifest objects of 3 lines."""
    sim = Simulator(
        SimConfig(seed=7, calls=CALLS, recording_fraction=1.0, min_size=2_000, max_size=6_000)
    )
    storage = StorageSettings(url=str(tmp_path / "archive"))
    builder = tmp_path / "builder"
    builder.mkdir()
    async with sim.serve() as base:
        settings = make_settings(
            sim, base, storage, str(builder / "state.sqlite3"), manifest_batch=3
        )
        await backfill(settings, sim)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env = cli_env(
        {"ARCHIVER_STORAGE__URL": storage.url, "ARCHIVER_STATE__URL": str(fresh / "s.sqlite3")}
    )
    return Path(storage.url), env, fresh


def _verified(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("verified "))


def _rollups(root: Path) -> list[str]:
    found = (root / ROLLUP_PREFIX).rglob("*")
    return sorted(str(p.relative_to(root)) for p in found if p.is_file())


async def test_rollup_then_verify_finds_the_same_and_a_second_pass_writes_nothing(archive) -> None:
    root, env, fresh = archive
    before = await run_cli("verify", env=env, cwd=fresh)
    assert before.code == 0, before.out + before.err
    dry = await run_cli("rollup", "--dry-run", env=env, cwd=fresh)
    assert dry.code == 0, dry.out + dry.err
    assert "would write rollup 1" in dry.out
    assert not (root / ROLLUP_PREFIX).exists()

    done = await run_cli("rollup", env=env, cwd=fresh)
    assert done.code == 0, done.out + done.err
    assert "wrote rollup 1" in done.out
    parts = _rollups(root)
    assert len(parts) == 3, parts
    data = next(root / p for p in parts if p.endswith(".jsonl") and "entries" not in p)
    manifests = sorted((root / "manifests").rglob("*.jsonl"))
    assert len(data.read_bytes().splitlines()) == CALLS
    entries = parse_entries(next(root / p for p in parts if "entries" in p).read_bytes())
    assert len(entries) == len(manifests)

    after = await run_cli("verify", env=env, cwd=fresh)
    assert after.code == 0, after.out + after.err
    assert _verified(after.out) == _verified(before.out)

    again = await run_cli("rollup", env=env, cwd=fresh)
    assert again.code == 0, again.out + again.err
    assert "nothing due" in again.out
    assert _rollups(root) == parts


async def test_an_unfinished_rollup_is_finished_with_its_own_coverage(archive) -> None:
    """A crash after the entries (the lines and the record never written): the next
    pass finishes that rollup, covering what its entries name, then the rest."""
    root, env, fresh = archive
    done = await run_cli("rollup", env=env, cwd=fresh)
    assert done.code == 0, done.out + done.err
    writer_dir = next((root / ROLLUP_PREFIX).iterdir())
    record = writer_dir / "000000000001.json"
    data = writer_dir / "000000000001.jsonl"
    entries = writer_dir / "000000000001.entries.jsonl"
    # What a writer that stopped after its entries leaves: the first 4 links' entries only.
    kept = b"".join(entries.read_bytes().splitlines(keepends=True)[:4])
    record.unlink()
    data.unlink()
    entries.write_bytes(kept)

    unfinished = await run_cli("verify", env=env, cwd=fresh)
    assert unfinished.code == 0, unfinished.out + unfinished.err

    again = await run_cli("rollup", env=env, cwd=fresh)
    assert again.code == 0, again.out + again.err
    assert "(an unfinished rollup, finished): links" in again.out
    assert "wrote rollup 2" in again.out
    assert len(parse_entries(entries.read_bytes())) == 4
    assert len((writer_dir / "000000000002.entries.jsonl").read_bytes().splitlines()) > 4
    final = await run_cli("verify", env=env, cwd=fresh)
    assert final.code == 0, final.out + final.err


async def test_a_broken_chain_is_never_rolled_up(archive) -> None:
    root, env, fresh = archive
    links = sorted((root / "_archiver" / "chain").rglob("*.json"))
    victim = next(p for p in links if p.name not in ("head.json",) and p.name.endswith("5.json"))
    victim.unlink()
    refused = await run_cli("rollup", env=env, cwd=fresh)
    assert refused.code == 5, refused.out + refused.err
    assert "NOT rolled up" in refused.out
    assert victim.name[:-5].lstrip("0") in refused.err or victim.name in refused.err, refused.err
    assert not (root / ROLLUP_PREFIX).exists()


async def test_the_run_leader_rolls_its_writer_up_off_the_hot_path(tmp_path: Path) -> None:
    """ARCHIVER_ROLLUP_OBJECTS=2: the leader rolls up after two manifest objects, while
    the service goes on archiving; verify then proves everything through the rollups."""
    sim = Simulator(
        SimConfig(
            seed=3,
            calls=8,
            recording_fraction=1.0,
            start=datetime.now(UTC) - timedelta(minutes=30),
            span=timedelta(minutes=20),
            min_size=2_000,
            max_size=20_000,
        )
    )
    root = tmp_path / "archive"
    async with sim.serve() as base:
        env = archiver_env(
            tmp_path,
            base=base,
            sim=sim,
            tuning={
                **DAEMON,
                "ARCHIVER_SOURCE__RATE_LIMIT": "0",
                "ARCHIVER_POLL_INTERVAL": "0.5",
                "ARCHIVER_MANIFEST_INTERVAL": "0.3",
                "ARCHIVER_MANIFEST_BATCH": "2",
                "ARCHIVER_ROLLUP_OBJECTS": "2",
                "ARCHIVER_GRACE": "5",
            },
        )
        proc = await start_cli("run", env=env, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 60
            while not list((root / ROLLUP_PREFIX).rglob("*[0-9].json")):
                assert time.monotonic() < deadline, "no rollup written by the run leader"
                assert proc.returncode is None
                await asyncio.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "rollup: " in err.decode()
    verified = await run_cli("verify", env=env, cwd=tmp_path)
    assert verified.code == 0, verified.out + verified.err
    assert "ROLLUPS " in verified.out
