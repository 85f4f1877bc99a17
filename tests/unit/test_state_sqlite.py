"""Pure rules of the SQLite state store: stored time format, manifest batch keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.state.sqlite import decode_time, encode_time
from archiver.storage.layout import manifest_key as manifest_batch_key

ICT = timezone(timedelta(hours=7))
AWARE = st.datetimes(timezones=st.sampled_from([UTC, ICT, timezone(timedelta(hours=-9))]))


@given(AWARE, AWARE)
def test_encoded_times_sort_like_the_times(a: datetime, b: datetime) -> None:
    # Text comparison in SQL (due times, checkpoints) relies on this.
    assert (encode_time(a) < encode_time(b)) == (a < b)
    assert (encode_time(a) == encode_time(b)) == (a == b)


@given(AWARE)
def test_decoding_gives_the_same_instant_in_utc(value: datetime) -> None:
    decoded = decode_time(encode_time(value))
    assert decoded == value
    assert decoded.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        (datetime(2021, 2, 17, 10, 0, tzinfo=ICT), "2021-02-17T03:00:00.000000Z"),
        (datetime(2021, 1, 1, 0, 0, 0, 5, tzinfo=UTC), "2021-01-01T00:00:00.000005Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000000Z"),
    ],
)
def test_stored_times_are_fixed_width_utc(value: datetime, stored: str) -> None:
    assert encode_time(value) == stored


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        encode_time(datetime(2021, 2, 17))  # noqa: DTZ001 - the point of the test


@pytest.mark.parametrize(
    ("day", "batch_id", "run_id", "key"),
    [
        ("2021-02-17", 42, "r1", "manifests/date=2021-02-17/000000000042-r1.jsonl"),
        (
            "2020-12-31",
            1,
            "20210217T0300Z-ab12",
            "manifests/date=2020-12-31/000000000001-20210217T0300Z-ab12.jsonl",
        ),
    ],
)
def test_manifest_batch_keys(day: str, batch_id: int, run_id: str, key: str) -> None:
    assert manifest_batch_key(day, batch_id, run_id) == key
