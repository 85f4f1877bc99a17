"""Directions in search: a meaning, a provider's numeric code, or both (pure rules)."""

from __future__ import annotations

from typing import Any

import pytest

from archiver.manifest.entry import ManifestEntry
from archiver.retrieval.search import SearchQuery, direction_label, direction_of
from archiver.settings import SourceSettings

CODES = {"1": "inbound", "2": "outbound"}


def call(direction: str | None, raw: str | None) -> ManifestEntry:
    fields: dict[str, Any] = {"direction": direction, "direction_raw": raw}
    return ManifestEntry("s", "c", "cdr_v2", "k", "0" * 64, 1, None, None, None, fields)


@pytest.mark.parametrize(
    ("direction", "raw", "codes", "wanted", "matches"),
    [
        ("outbound", "outbound", {}, "outbound", True),
        ("outbound", "outbound", {}, "inbound", False),
        (None, "2", {}, "2", True),
        (None, "2", {}, "outbound", False),
        (None, "2", CODES, "outbound", True),
        (None, "2", CODES, "inbound", False),
        (None, "3", CODES, "local", False),
        (None, " 2", {}, "2", True),
        ("inbound", "inbound", CODES, "1", False),
        (None, None, CODES, "inbound", False),
    ],
)
def test_a_direction_matches_by_meaning_or_code(
    direction: str | None, raw: str | None, codes: dict[str, str], wanted: str, matches: bool
) -> None:
    query = SearchQuery(direction=wanted, direction_codes=codes)
    assert query.matches(call(direction, raw)) is matches


@pytest.mark.parametrize(
    ("direction", "raw", "codes", "meaning", "label"),
    [
        ("inbound", "inbound", CODES, "inbound", "inbound"),
        (None, "2", CODES, "outbound", "outbound (2)"),
        (None, "7", CODES, None, "code 7"),
        (None, None, CODES, None, ""),
    ],
)
def test_a_direction_is_shown_with_its_code(
    direction: str | None, raw: str | None, codes: dict[str, str], meaning: str | None, label: str
) -> None:
    fields = {"direction": direction, "direction_raw": raw}
    assert direction_of(fields, codes) == meaning
    assert direction_label(fields, codes) == label


def test_an_unknown_code_is_reported_only_when_its_meaning_is_unknown() -> None:
    query = SearchQuery(direction="outbound", direction_codes={"1": "inbound"})
    assert query.unknown_code(call(None, "2")) == "2"
    assert query.unknown_code(call(None, "1")) is None
    assert query.unknown_code(call("local", "local")) is None


@pytest.mark.parametrize("bad", ["up", "2x", ""])
def test_a_direction_that_is_neither_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="--direction"):
        SearchQuery(direction=bad)


def test_direction_codes_setting() -> None:
    codes = SourceSettings.model_validate({"direction_codes": " 1=Inbound, 2=outbound,"})
    assert codes.direction_codes == {"1": "inbound", "2": "outbound"}
    for bad in ("x=inbound", "1:inbound", "1=up"):
        with pytest.raises(ValueError, match="direction_codes"):
            SourceSettings.model_validate({"direction_codes": bad})
