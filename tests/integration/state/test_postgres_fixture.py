"""The throwaway PostgreSQL cluster of tests/support/postgres.py answers, per test."""

from __future__ import annotations

import pytest

from tests.support import postgres
from tests.support.postgres import PostgresServer


def test_each_test_gets_its_own_database(
    postgres_cluster: PostgresServer, postgres_url: str
) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    assert postgres_url.startswith(f"postgresql://postgres@127.0.0.1:{postgres_cluster.port}/")
    assert postgres_cluster.psql("SELECT current_database()", database=name) == name
    # Only loopback: the server listens on 127.0.0.1 alone.
    assert postgres_cluster.psql("SHOW listen_addresses") == "127.0.0.1"


def test_missing_binaries_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine without the package: the fixture fails with the install line, never skips.
    monkeypatch.setattr(postgres.shutil, "which", lambda _name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda _pattern: [])
    with pytest.raises(postgres.PostgresMissingError, match="apt-get install -y postgresql"):
        postgres.find_bindir()
