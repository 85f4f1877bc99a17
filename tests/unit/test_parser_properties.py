"""Property tests: the CDR parsers and a page's collection, fed anything a provider might send."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from archiver.errors import BadRecordError
from archiver.sources import epacific

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.mark.parametrize(
    "record",
    [
        {"callid": "x", "start": "2021-02-17 10:00:00", "tta": 10**20},
        {"callid": "x", "start": "2021-02-17 10:00:00", "duration": 10**20},
        {"callid": "x", "start": "9999-12-31 23:59:59", "tta": 5, "duration": 5},
    ],
)
def test_extreme_values_are_refused_not_crashed_on(record: dict[str, Any]) -> None:
    with pytest.raises(BadRecordError, match="out of range"):
        epacific.parse_record(record, HCM)
