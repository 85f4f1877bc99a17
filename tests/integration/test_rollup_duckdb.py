"""The user guide's DuckDB query over rollups plus the small objects written since, run as
written: every call line once, none from the entries or an unfinished rollup."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.manifest.rollup_write import RollupWriter
from archiver.storage import open_store
from tests.support.pipeline import backfilled_writer

duckdb = pytest.importorskip("duckdb")

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "user-guide.md"


def guide_statements() -> list[str]:
    """The statements of the user guide's DuckDB rollup block."""
    match = re.search(r"```sql\n(-- DuckDB: every call line once.*?)```", GUIDE.read_text(), re.S)
    assert match, "the user guide has no DuckDB rollup query"
    return [s.strip() for s in match.group(1).split(";") if s.strip().strip("-")]


async def test_the_guide_reads_rollups_and_the_small_objects_since(tmp_path, monkeypatch):
    storage, writer, sim = await backfilled_writer(tmp_path, calls=10, max_size=20_000)
    async with open_store(storage) as store:
        rolled = RollupWriter(store, writer, now=lambda: datetime.now(UTC), max_objects=2)
        done = await rolled.run()
    assert len(done.records) >= 2
    # The last rollup left unfinished (its record gone, entries and lines kept): its
    # small objects are "written since the last rollup", its lines must not count.
    last = done.records[-1]
    (tmp_path / "archive" / last.key).unlink()
    monkeypatch.chdir(tmp_path)  # the query names ./archive
    con = duckdb.connect()
    for statement in guide_statements():
        rows = con.sql(statement)
    result = rows.fetchall()
    archived = [c for c in sim.calls if c.has_recording]
    assert sum(calls for _, calls, _ in result) == len(archived)
    assert sum(size for _, _, size in result) == sum(c.size for c in archived)
    ids = con.sql("SELECT sip_call_id FROM calls").fetchall()
    assert sorted(i for (i,) in ids) == sorted(c.sip_call_id for c in archived)
