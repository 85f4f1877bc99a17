"""CHANGELOG.md keeps its form (Keep a Changelog) and names the version pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path

REPO = Path(__file__).parents[2]
RELEASE = re.compile(r"## \[(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?\] - (\d{4}-\d{2}-\d{2})")
KINDS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def _headings(level: str) -> list[str]:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.startswith(level + " ")]


def test_unreleased_comes_first_then_releases_newest_first() -> None:
    versions = _headings("##")
    assert versions[0] == "## [Unreleased]"
    released = [RELEASE.fullmatch(line) for line in versions[1:]]
    assert None not in released, versions
    numbers = [tuple(int(m.group(i)) for i in (1, 2, 3)) for m in released if m]
    days = [date.fromisoformat(m.group(5)) for m in released if m]
    assert numbers == sorted(numbers, reverse=True)
    assert len(set(numbers)) == len(numbers)
    assert days == sorted(days, reverse=True)


def test_the_newest_release_is_the_version_pyproject_declares() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    newest = RELEASE.fullmatch(_headings("##")[1])
    assert newest is not None
    assert newest.group(0).startswith(f"## [{declared}] - ")


def test_changes_are_grouped_by_kind() -> None:
    kinds = {line.removeprefix("### ") for line in _headings("###")}
    assert kinds <= KINDS, kinds - KINDS
