"""docs/upgrading.md says what every state migration step does: a new step without
its row in the page's table fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archiver.state.postgres import migrations as postgres
from archiver.state.sqlite import migrations as sqlite

PAGE = Path(__file__).parents[2] / "docs" / "upgrading.md"


def _steps(section: str) -> list[int]:
    """The version numbers of the table under the ``### <section>`` heading."""
    text = PAGE.read_text(encoding="utf-8")
    body = text.split(f"### {section}", 1)[1].split("\n#", 1)[0]
    return [int(n) for n in re.findall(r"^\| (\d+) \|", body, re.MULTILINE)]


@pytest.mark.parametrize(
    ("section", "latest"),
    [("SQLite", sqlite.LATEST_VERSION), ("PostgreSQL", postgres.LATEST_VERSION)],
)
def test_every_migration_step_has_its_row(section: str, latest: int) -> None:
    assert _steps(section) == list(range(1, latest + 1))
