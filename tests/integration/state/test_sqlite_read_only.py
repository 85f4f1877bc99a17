"""The state database opened for reading only (``reconcile`` without ``--fix``): a real file."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.errors import ConfigError
from archiver.failures import FailureKind
from archiver.models import CallRecord, Provider
from archiver.settings import StateSettings
from archiver.state import open_state_read_only, open_state_store
from archiver.state.sqlite.migrations import LATEST_VERSION

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _call(n: int) -> CallRecord:
    return CallRecord(
        provider=Provider.CDR_V2,
        cdr_id=f"c{n}",
        sip_call_id=f"s{n}",
        started_at=NOW,
        recording_url=f"https://rec.example/{n}.wav",
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_no_file_is_no_state_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.sqlite3"
    async with open_state_read_only(StateSettings(url=str(path))) as state:
        assert state is None
    assert not (tmp_path / "sub").exists()


async def test_reads_failures_and_refuses_writes_leaving_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    settings = StateSettings(url=str(path))
    async with open_state_store(settings) as writable:
        await writable.jobs.add_calls([_call(1), _call(2)], NOW)
        job = (await writable.jobs.claim_due(NOW, 1))[0]
        await writable.outcomes.mark_failed(
            job.id, "404 after the deadline", kind=FailureKind.NEVER_AVAILABLE
        )
    before = _digest(path)
    async with open_state_read_only(settings) as state:
        assert state is not None
        failures = await state.reports.failures()
        assert [(f.cdr_id, f.reason) for f in failures] == [("c1", "404 after the deadline")]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await state.jobs.add_calls([_call(3)], NOW)
    assert _digest(path) == before


async def test_an_empty_file_is_no_state(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.sqlite3"
    path.touch()
    async with open_state_read_only(StateSettings(url=str(path))) as state:
        assert state is None
    assert path.read_bytes() == b""
    assert "empty or of an older schema" in caplog.text


async def test_an_older_schema_is_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    async with open_state_store(StateSettings(url=str(path))):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (LATEST_VERSION - 1,))
    before = _digest(path)
    async with open_state_read_only(StateSettings(url=str(path))) as state:
        assert state is None
    assert _digest(path) == before


async def test_a_newer_schema_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    async with open_state_store(StateSettings(url=str(path))):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(ConfigError, match="newer"):
        async with open_state_read_only(StateSettings(url=str(path))):
            pass


async def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not sqlite, but it is long enough to have a header" * 4)
    with pytest.raises(ConfigError, match="STATE__URL"):
        async with open_state_read_only(StateSettings(url=str(path))):
            pass
