"""Every source file the docs name exists: a rename or a move updates the pages that
point at it (the docs cite ``pipeline/handling.py``, ``tests/support/stepped.py``...)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
PAGES = sorted([*REPO.glob("docs/*.md"), REPO / "README.md", REPO / "CHANGELOG.md"])
# A path in backquotes: folders and a file name with a code suffix.
CITED = re.compile(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|toml|yml|yaml|sh|cfg))`")


def _exists(cited: str) -> bool:
    return any((root / cited).exists() for root in (REPO, REPO / "archiver", REPO / "tests"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_files_a_page_names_exist(page: Path) -> None:
    missing = sorted({m for m in CITED.findall(page.read_text(encoding="utf-8")) if not _exists(m)})
    assert missing == []
