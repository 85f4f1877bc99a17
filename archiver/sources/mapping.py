"""Pure helpers shared by the providers' field mappings."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from archiver.errors import BadRecordError
from archiver.models import CallRecord, Direction
from archiver.sources.base import Page
from archiver.timeutil import parse_duration, parse_provider_time

_DIRECTIONS = {d.value: d for d in Direction}


def check_unicode(record: dict[str, Any]) -> None:
    """BadRecordError if any string in the record is not valid Unicode.

    A JSON escape such as ``"\\ud800"`` decodes to a lone surrogate: no UTF-8
    encoder accepts it, so the record could be neither stored in the state
    database nor written to a manifest, and would end the whole listing there.
    """
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRecordError("a text field is not valid Unicode (a lone surrogate)") from None


def text(value: Any) -> str | None:
    """A stripped string, or None for absent/empty values."""
    if value is None or isinstance(value, dict | list):
        return None
    result = str(value).strip()
    return result or None


def required_text(record: dict[str, Any], *names: str) -> str:
    """The first non-empty of ``names``; BadRecordError if none is there."""
    for name in names:
        value = text(record.get(name))
        if value:
            return value
    raise BadRecordError(f"missing {' / '.join(names)}")


def first_text(record: dict[str, Any], *names: str) -> str | None:
    """The first non-empty of ``names``, or None."""
    for name in names:
        value = text(record.get(name))
        if value:
            return value
    return None


def time_field(record: dict[str, Any], name: str, tz: tzinfo) -> datetime | None:
    """A timestamp field; empty means absent; garbage raises BadRecordError."""
    try:
        return parse_provider_time(record.get(name), tz)
    except ValueError as exc:
        raise BadRecordError(f"{name}: {exc}") from None
    except OverflowError:
        # An integer too large to become a float (math.isfinite) or a date.
        raise BadRecordError(f"{name}: timestamp out of range") from None


def int_field(record: dict[str, Any], name: str) -> int | None:
    """A whole number of seconds (``11``, ``"11"``, ``"00:00:11"``)."""
    try:
        return parse_duration(record.get(name))
    except ValueError as exc:
        raise BadRecordError(f"{name}: {exc}") from None


def direction(value: Any) -> tuple[Direction | None, str | None]:
    """(normalized direction, raw value). Unknown values, numeric codes included,
    are kept raw and not guessed: the seeds do not say what the numbers mean."""
    raw = text(value)
    if raw is None:
        return None, None
    return _DIRECTIONS.get(raw.lower()), raw


def as_int(value: Any) -> int | None:
    """A paging number (``total``, ``limit``, ``page_count``): an int or a string of
    digits; anything else, or anything absurdly long, is None (not known)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        # int() refuses digit strings past 4300 characters; no real count has 19 digits.
        if text.isdigit() and len(text) <= 18:
            return int(text)
    return None


def url_field(record: dict[str, Any], *names: str) -> str | None:
    """A recording link; empty means the call has no recording."""
    value = first_text(record, *names)
    return value or None


def collect_page(
    rows: list[Any],
    parse: Callable[[Any, tzinfo], CallRecord],
    tz: tzinfo,
    start: datetime,
    end: datetime,
    seen: set[str],
) -> tuple[Page, list[str]]:
    """Parse one page's rows into a Page, keeping only new calls inside [start, end).

    Returns the page and the ids in server order (bad records get a placeholder,
    since they still take a place in the server's paging).
    """
    page = Page()
    ids: list[str] = []
    for row in rows:
        try:
            call = parse(row, tz)
        except BadRecordError as exc:
            page.skipped.append(str(exc))
            ids.append(f"#bad{len(ids)}")
            continue
        ids.append(call.cdr_id)
        if call.cdr_id in seen:
            page.duplicates += 1
        elif not start <= call.started_at < end:
            page.outside += 1
        else:
            seen.add(call.cdr_id)
            page.records.append(call)
    return page, ids
