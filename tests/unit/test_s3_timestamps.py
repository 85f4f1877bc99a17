"""The S3 client's timestamp parser: botocore's answers, without dateutil on listings."""

from __future__ import annotations

import pytest
from botocore.utils import parse_timestamp as botocore_default

from archiver.storage.s3_proof import parse_timestamp


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-30T05:00:00.000Z",  # a listing's LastModified
        "2026-11-30T05:00:00Z",
        "2026-11-30T05:00:00.123456+07:00",
        "2026-11-30T05:00:00",  # no offset: botocore's reading (local time) is kept
        "Mon, 30 Nov 2026 05:00:00 GMT",  # a header's HTTP date
        1_700_000_000,  # epoch seconds
        "1700000000",
    ],
)
def test_every_timestamp_reads_as_botocore_reads_it(value: object) -> None:
    assert parse_timestamp(value) == botocore_default(value)


def test_an_iso_timestamp_does_not_go_through_dateutil(monkeypatch) -> None:
    def refuse(value: object) -> None:
        raise AssertionError(f"dateutil asked for {value!r}")

    monkeypatch.setattr("archiver.storage.s3_proof.DEFAULT_TIMESTAMP_PARSER", refuse)
    assert parse_timestamp("2026-11-30T05:00:00.000Z").year == 2026
