from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from archiver.timeutil import (
    ceil_minute,
    floor_minute,
    parse_duration,
    parse_provider_time,
    parse_user_time,
    split_windows,
)

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-02-17 17:30:35", datetime(2021, 2, 17, 17, 30, 35, tzinfo=HCM)),
        ("2021-02-17T17:30:35", datetime(2021, 2, 17, 17, 30, 35, tzinfo=HCM)),
        ("2021/02/17 17:30", datetime(2021, 2, 17, 17, 30, tzinfo=HCM)),
        ("2021-02-17T10:30:35Z", datetime(2021, 2, 17, 10, 30, 35, tzinfo=UTC)),
        ("2021-02-17 17:30:35+07:00", datetime(2021, 2, 17, 10, 30, 35, tzinfo=UTC)),
        (1613557835, datetime(2021, 2, 17, 10, 30, 35, tzinfo=UTC)),
        ("", None),
        ("   ", None),
        (None, None),
        ("0000-00-00 00:00:00", None),
    ],
)
def test_provider_times(value, expected):
    assert parse_provider_time(value, HCM) == expected


@pytest.mark.parametrize("value", ["yesterday", "2021-13-01", True, [], {}, -5, float("nan"), 1e12])
def test_bad_provider_times(value):
    with pytest.raises(ValueError, match="timestamp"):
        parse_provider_time(value, HCM)


def test_user_time_date_and_naive_mean_the_source_zone():
    assert parse_user_time("2021-02-17", HCM) == datetime(2021, 2, 17, tzinfo=HCM)
    assert parse_user_time("2021-02-17 17:30", HCM) == datetime(2021, 2, 17, 17, 30, tzinfo=HCM)
    assert parse_user_time("2021-02-17T17:30+00:00", HCM).utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["", "soon", "17/02/2021"])
def test_user_time_errors_are_clear(value):
    with pytest.raises(ValueError, match="not a date or datetime"):
        parse_user_time(value, HCM)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("00:01:05", 65),
        ("1:00:00", 3600),
        ("05:09", 309),
        ("0", 0),
        (12, 12),
        (2.6, 3),
        ("", None),
        (None, None),
    ],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["00:61:00", "abc", -1, True, "1:2:3:4", float("inf")])
def test_bad_durations(value):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_minute_rounding():
    t = datetime(2021, 2, 17, 10, 5, 30, tzinfo=HCM)
    assert floor_minute(t) == datetime(2021, 2, 17, 10, 5, tzinfo=HCM)
    assert ceil_minute(t) == datetime(2021, 2, 17, 10, 6, tzinfo=HCM)
    exact = datetime(2021, 2, 17, 10, 5, tzinfo=HCM)
    assert ceil_minute(exact) == exact


def test_windows_cover_the_range_exactly_and_align():
    since = datetime(2021, 2, 17, 10, 7, 13, tzinfo=UTC)
    until = datetime(2021, 2, 17, 13, 0, tzinfo=UTC)
    windows = split_windows(since, until, timedelta(hours=1), timedelta(minutes=1))
    assert windows[0] == (since, datetime(2021, 2, 17, 11, 0, tzinfo=UTC))
    assert windows[-1][1] == until
    for (_, a_end), (b_start, _) in zip(windows, windows[1:], strict=False):
        assert a_end == b_start
    assert len(windows) == 3


def test_windows_are_the_same_on_a_rerun_from_another_start():
    until = datetime(2021, 2, 18, tzinfo=UTC)
    a = split_windows(datetime(2021, 2, 17, tzinfo=UTC), until, timedelta(hours=6))
    b = split_windows(datetime(2021, 2, 17, 6, tzinfo=UTC), until, timedelta(hours=6))
    assert a[1:] == b


def test_empty_range():
    t = datetime(2021, 2, 17, tzinfo=UTC)
    assert split_windows(t, t, timedelta(hours=1)) == []
