"""The user guide's DuckDB one-liner, run as written over a manifest the pipeline wrote."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from tests.support.pipeline import backfill, make_settings

duckdb = pytest.importorskip("duckdb")

README = Path(__file__).resolve().parents[2] / "docs" / "user-guide.md"


def readme_query() -> str:
    """The SQL of the user guide's ``duckdb -c "..."`` line."""
    match = re.search(r'^duckdb -c "(.+)"$', README.read_text(), re.MULTILINE)
    assert match, "the user guide has no duckdb -c line"
    return match.group(1)


async def test_the_readme_duckdb_query_reads_the_manifest(tmp_path, monkeypatch):
    sim = Simulator(SimConfig(seed=4, calls=8, max_size=60_000))
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        await backfill(make_settings(sim, base, storage, str(tmp_path / "s.sqlite3")), sim)
    monkeypatch.chdir(tmp_path)  # the query names ./archive
    rows = duckdb.connect().sql(readme_query()).fetchall()
    archived = [c for c in sim.calls if c.has_recording]
    assert sum(calls for _, _, calls, _ in rows) == len(archived)
    assert sum(size for _, _, _, size in rows) == sum(c.size for c in archived)
    assert {str(day) for day, _, _, _ in rows} == {"2021-02-17"}
