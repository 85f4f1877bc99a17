"""The PostgreSQL state URL: which URLs select it, and what messages may say of it."""

from __future__ import annotations

import pytest

from archiver.errors import ConfigError
from archiver.settings import StateSettings
from archiver.state import describe_state
from archiver.state.postgres.connect import Target, reason


@pytest.mark.parametrize(
    ("url", "postgres"),
    [
        ("postgresql://u:p@db:5432/archive", True),
        ("postgres://db/archive", True),
        ("sqlite:///var/lib/archiver/state.sqlite3", False),
        ("./archiver-state.sqlite3", False),
    ],
)
def test_which_urls_are_postgres(url: str, postgres: bool) -> None:
    settings = StateSettings(url=url)
    assert settings.is_postgres is postgres
    settings.validate_url()  # none of these is refused


@pytest.mark.parametrize("url", ["mysql://db/archive", "postgresq://db/x", "redis://h"])
def test_other_urls_are_refused_naming_the_variable(url: str) -> None:
    with pytest.raises(ConfigError, match=r"ARCHIVER_STATE__URL: must be sqlite:///PATH"):
        StateSettings(url=url).validate_url()


@pytest.mark.parametrize(
    ("url", "spellings", "described"),
    [
        (
            "postgresql://archiver:s3cr%40t+x@db.internal:6432/calls",
            ("s3cr%40t+x", "s3cr@t+x"),
            "PostgreSQL database calls on db.internal:6432",
        ),
        (
            "postgres://archiver@db.internal/calls?sslmode=disable&password=qu3ry%2Bs3cret+2",
            ("qu3ry%2Bs3cret+2", "qu3ry+s3cret 2", "qu3ry+s3cret+2"),
            "PostgreSQL database calls on db.internal:5432",
        ),
    ],
)
def test_messages_name_host_and_database_never_the_password(
    url: str, spellings: tuple[str, ...], described: str
) -> None:
    target = Target.parse(url)
    assert target.describe() == described
    assert describe_state(StateSettings(url=url)) == described
    # A driver message quoting the password or the whole DSN, in any spelling, is scrubbed.
    said = reason(OSError(f"cannot reach {url} with {' or '.join(spellings)}"), target)
    for spelling in spellings:
        assert spelling not in said
    assert "***" in said
    assert "db.internal" in said


def test_a_garbled_url_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as caught:
        Target.parse("postgresql://u:hunter2@db:port/x")
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None
