"""The scratch SQLite file of verify and reconcile: private, removed at exit, never fatal."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from archiver.retrieval.scratch import open_scratch


def _database(connection) -> Path | None:
    [(_, _, file)] = connection.execute("PRAGMA database_list").fetchall()
    return Path(file) if file else None


def test_a_private_file_in_a_private_folder_removed_at_exit(tmp_path: Path) -> None:
    with open_scratch(tmp_path, "verify") as db:
        db.execute("CREATE TABLE t (x INTEGER)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
        assert db.execute("SELECT count(*) FROM t").fetchone() == (1000,)
        path = _database(db)
        assert path is not None
        assert path.parent.parent == tmp_path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert db.execute("PRAGMA journal_mode").fetchone() == ("off",)
        assert db.execute("PRAGMA synchronous").fetchone() == (0,)
    assert list(tmp_path.iterdir()) == []


def test_removed_when_the_command_fails(tmp_path: Path) -> None:
    def command() -> None:
        with open_scratch(tmp_path) as db:
            db.execute("CREATE TABLE t (x INTEGER)")
            raise RuntimeError("storage outage")

    with pytest.raises(RuntimeError):
        command()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["a-file", "missing/deeper"])
def test_no_writable_place_falls_back_to_memory_with_a_warning(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with caplog.at_level(logging.WARNING, "archiver.scratch"), open_scratch(tmp_path / where) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
        db.execute("INSERT INTO t VALUES (1)")
        assert _database(db) is None  # in memory
    [record] = caplog.records
    assert "in memory" in record.getMessage()
    assert "ARCHIVER_SCRATCH_DIR" in record.getMessage()


def test_the_default_is_the_system_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with open_scratch() as db:
        path = _database(db)
        assert path is not None
        assert path.parent.parent == tmp_path
    assert list(tmp_path.iterdir()) == []
