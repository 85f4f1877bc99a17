"""Pure time rules: parsing providers' and users' timestamps, minute edges, windows."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, tzinfo

# MySQL-style "no value" timestamps some providers send instead of an empty string.
_ZERO_TIMES = {"0000-00-00 00:00:00", "0000-00-00", "0000-00-00 00:00"}
_HMS = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2})\s*$")


def parse_provider_time(value: object, tz: tzinfo) -> datetime | None:
    """A provider's timestamp as an aware datetime, or None when absent.

    Naive strings are in ``tz`` (the provider's zone); strings with an offset keep
    it; numbers are Unix seconds. Raises ValueError on anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 < value < 4_102_444_800:  # before 2100
            raise ValueError(f"timestamp out of range: {value!r}")
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {type(value).__name__}")
    text = value.strip()
    if not text or text in _ZERO_TIMES:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text.replace("/", "-"))
    except ValueError:
        raise ValueError(f"not a timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=tz)
    return parsed


def parse_user_time(value: str, tz: tzinfo) -> datetime:
    """A ``--since``/``--until`` value: a date or an ISO 8601 datetime, naive meaning ``tz``."""
    text = value.strip()
    try:
        parsed = parse_provider_time(text, tz)
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(
            f"not a date or datetime: {value!r} (use 2021-02-17, 2021-02-17 17:30 or ISO 8601)"
        )
    return parsed


def parse_duration(value: object) -> int | None:
    """Seconds from ``hh:mm:ss``, ``mm:ss``, a number, or a numeric string; None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"negative duration: {value}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a duration: {value!r}")
        return round(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        match = _HMS.match(text)
        if match:
            hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
            if minutes >= 60 or seconds >= 60:
                raise ValueError(f"not a duration: {value[:20]!r}")
            return hours * 3600 + minutes * 60 + seconds
    raise ValueError(f"not a duration: {str(value)[:20]!r}")


def floor_minute(moment: datetime) -> datetime:
    """The start of ``moment``'s minute."""
    return moment.replace(second=0, microsecond=0)


def ceil_minute(moment: datetime) -> datetime:
    """The first whole minute at or after ``moment``."""
    floored = floor_minute(moment)
    return floored if floored == moment else floored + timedelta(minutes=1)


def ceil_second(moment: datetime) -> datetime:
    """The first whole second at or after ``moment``."""
    floored = moment.replace(microsecond=0)
    return floored if floored == moment else floored + timedelta(seconds=1)


def utc_text(moment: datetime) -> str:
    """``moment`` in UTC as ISO 8601 with a ``Z``: the form records store, which sorts as text."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def naive_in(moment: datetime, tz: tzinfo, fmt: str) -> str:
    """``moment`` written as the provider's naive local time."""
    return moment.astimezone(tz).strftime(fmt)


def split_windows(
    since: datetime, until: datetime, size: timedelta, align: timedelta = timedelta(seconds=1)
) -> list[tuple[datetime, datetime]]:
    """Cut [since, until) into consecutive windows of at most ``size``.

    Inner edges fall on multiples of ``align`` counted from the Unix epoch, so a
    re-run with the same range produces the same windows (and finds them done).
    """
    if until <= since:
        return []
    if size <= timedelta(0) or align <= timedelta(0):
        raise ValueError("window size and alignment must be positive")
    step = max(size // align, 1) * align
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    windows = []
    start = since
    while start < until:
        offset = (start - epoch) % step
        end = min(start - offset + step, until)
        windows.append((start, end))
        start = end
    return windows
