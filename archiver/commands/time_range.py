"""The ``--since``/``--until`` options the reading commands share (verify, search, audit)."""

from __future__ import annotations

import argparse
from datetime import datetime, tzinfo

from archiver.errors import UsageError
from archiver.timeutil import parse_user_time


def add_range(
    parser: argparse.ArgumentParser,
    what: str,
    *,
    zone: str = "a date or datetime without an offset is in the source's time zone",
) -> None:
    """``--since`` and ``--until`` (both optional): ``what`` is what they select
    ("verify calls started"), ``zone`` how a time without an offset is read."""
    parser.add_argument(
        "--since",
        metavar="T",
        help=f"{what} at or after T: a date or an ISO 8601 datetime ({zone})",
    )
    parser.add_argument("--until", metavar="T", help="... and before T (exclusive)")


def parse_range(
    since: str | None, until: str | None, tz: tzinfo
) -> tuple[datetime | None, datetime | None]:
    """The [since, until) the options give; naive times are in ``tz``. ConfigError if unusable."""
    try:
        start = parse_user_time(since, tz) if since else None
        end = parse_user_time(until, tz) if until else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if start is not None and end is not None and end <= start:
        raise UsageError("--until must be later than --since")
    return start, end
