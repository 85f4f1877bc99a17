"""``verify --since/--until`` walks a writer that has no rollup whole, as a full verify
walks it (on its scratch file, a row a link, not every link held in memory), and finds
in it what a full verify finds: a link removed or altered, a link beside the chain, a
missing head, a link number no link can have. One writer rolled up, a second never
(a backfill on a state of its own after the rollup), on a local folder, the CLI as a
subprocess."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage.layout import CHAIN_PREFIX
from tests.support.cli import cli_env, run_cli
from tests.support.pipeline import backfill, make_settings

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = ["--since", "2021-02-05", "--until", "2021-02-06"]


async def _run(storage: StorageSettings, state: Path, seed: int, day: int) -> None:
    sim = Simulator(
        SimConfig(
            seed=seed,
            calls=24,
            start=datetime(2021, 2, day, 8, 0, tzinfo=TZ),
            span=timedelta(hours=12),
            recording_fraction=1.0,
            min_size=1_000,
            max_size=2_000,
        )
    )
    async with sim.serve() as base:
        await backfill(make_settings(sim, base, storage, str(state), manifest_batch=3), sim)


async def test_a_writer_without_rollups_is_walked_whole_and_checked(tmp_path: Path) -> None:
    storage = StorageSettings(url=str(tmp_path / "archive"))
    root = Path(storage.url)
    env = cli_env({"ARCHIVER_STORAGE__URL": storage.url,
                   "ARCHIVER_STATE__URL": str(tmp_path / "cli.sqlite3"),
                   "ARCHIVER_SCRATCH_DIR": str(tmp_path)})  # fmt: skip
    await _run(storage, tmp_path / "first.sqlite3", 21, 4)
    rolled = await run_cli("rollup", env=env, cwd=tmp_path)
    assert rolled.code == 0, rolled.out + rolled.err
    await _run(storage, tmp_path / "second.sqlite3", 22, 5)  # a writer of its own
    writers = sorted(p.name for p in (root / CHAIN_PREFIX).iterdir() if p.is_dir())
    assert len(writers) == 2, writers
    rollups = {p.name for p in (root / "_archiver" / "rollups").iterdir()}
    (whole,) = [w for w in writers if w not in rollups]
    links = sorted((root / CHAIN_PREFIX / whole).glob("0*.json"))
    assert len(links) >= 6, links

    clean = await run_cli("verify", *DAY, env=env, cwd=tmp_path)
    assert clean.code == 0, clean.out + clean.err
    assert "1 writer(s) walked whole" in clean.out

    async def broken(expected: str, kind: str = "CHAIN-BROKEN") -> str:
        result = await run_cli("verify", *DAY, env=env, cwd=tmp_path)
        assert result.code == 5, result.out + result.err
        found = [line for line in result.out.splitlines() if line.startswith(kind)]
        assert any(expected in line for line in found), result.out
        return result.out

    middle = links[len(links) // 2]
    kept = middle.read_bytes()
    middle.unlink()
    assert "missing" in await broken(middle.name)
    middle.write_bytes(kept.replace(b'"lines":', b'"lines": ', 1))
    assert "altered" in await broken(middle.name)
    middle.write_bytes(kept)

    beside = middle.with_name(f"{10**9:012}.json")
    beside.write_bytes(kept)  # a copy under another number
    await broken("the link says it is")
    link = json.loads(kept)
    link["seq"] = 10**9
    beside.write_text(json.dumps(link))  # a link of its own, beside the chain
    await broken("no head vouches for it", "UNPROVEN")
    beside.unlink()

    huge = middle.with_name(f"{2**64}.json")
    huge.write_bytes(kept)
    out = await broken("a link number no link can have")
    assert "OUT-OF-CHAIN" not in out, "the rest of the writer's chain still walks"
    huge.unlink()

    head = root / CHAIN_PREFIX / whole / "head.json"
    head_bytes = head.read_bytes()
    head.unlink()
    await broken("the chain head is missing")
    head.write_bytes(head_bytes)
    again = await run_cli("verify", *DAY, env=env, cwd=tmp_path)
    assert again.code == 0, again.out + again.err
    assert not [p for p in tmp_path.glob("archiver-*")], "the scratch folder is removed"
