import copy
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from archiver.errors import BadRecordError
from archiver.models import Direction, Provider
from archiver.sources.cdr_v2 import is_flex, parse_record
from archiver.sources.mapping import collect_page
from tests.unit.seed_samples import DEFAULT_PAGE, FLEX_PAGE, SINGLE_DEFAULT

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def test_default_mapping_of_the_seed_sample():
    call = parse_record(DEFAULT_PAGE["data"][0], HCM)
    assert call.provider is Provider.CDR_V2
    assert call.cdr_id == "ad4c9b90-c071-405a-9723-980d2e5e1623"
    assert call.sip_call_id == "112233aabbccddee.."
    assert call.started_at == datetime(2021, 2, 17, 17, 30, 35, tzinfo=HCM)
    assert call.started_at.utcoffset() == timedelta(hours=7)
    assert call.answered_at == datetime(2021, 2, 17, 17, 30, 43, tzinfo=HCM)
    assert call.ended_at == datetime(2021, 2, 17, 17, 30, 46, tzinfo=HCM)
    assert call.duration == 11
    assert call.billsec == 3  # derived: ended - answered
    assert call.recording_url == "http://recording.demo/ad4c9b90-c071-405a-9723-980d2e5e1623"
    assert call.customer_id == "c1450608-098e-413d-9e2c-66333b79afe1"  # from lead_id
    assert call.extension is None  # "" means absent
    assert call.agent is None
    assert call.agent_name is None
    assert call.status == "ANSWERED"
    assert call.cause == "NORMAL_CLEARING"
    assert call.raw["press_key"] == "{}"  # kept raw


def test_default_mapping_quirks_of_the_second_record():
    call = parse_record(DEFAULT_PAGE["data"][1], HCM)
    assert call.cdr_id == "01b7d166-b564-42ec-80a1-4ad343225934"  # trailing space stripped
    assert call.answered_at is None  # "" time means absent
    assert call.billsec is None
    assert call.recording_url is None
    assert not call.has_recording
    assert call.customer_id == "c1450608-098e-413d-9e2c-66333b79afe1"  # from customer_id
    assert call.agent == "agent101"
    assert call.agent_name == "Nguyen Van A"


def test_numeric_direction_is_kept_raw_not_guessed():
    call = parse_record(DEFAULT_PAGE["data"][0], HCM)
    assert call.direction is None
    assert call.direction_raw == "3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("inbound", Direction.INBOUND),
        ("OUTBOUND", Direction.OUTBOUND),
        (" local ", Direction.LOCAL),
        (1, None),
        ("sideways", None),
        ("", None),
        (None, None),
    ],
)
def test_direction_normalization(value, expected):
    record = copy.deepcopy(DEFAULT_PAGE["data"][0])
    record["direction"] = value
    assert parse_record(record, HCM).direction == expected


@pytest.mark.parametrize("press_key", ["{}", "", {"1": "ok"}, None, "not json"])
def test_press_key_string_or_object_parses(press_key):
    record = copy.deepcopy(DEFAULT_PAGE["data"][0])
    record["press_key"] = press_key
    assert parse_record(record, HCM).raw["press_key"] == press_key


def test_flex_mapping_of_the_seed_sample():
    record = FLEX_PAGE["data"][0]
    assert is_flex(record)
    call = parse_record(record, HCM)
    assert call.cdr_id == "0c1d6ff3-c9b0-4fd1-8f5c-7be53f5f6973"
    assert call.sip_call_id == "80bea701-49de-123a-89ab-fa163e3b9b38"
    assert call.recording_url == "http://recording.demo/0c1d6ff3-c9b0-4fd1-8f5c-7be53f5f6973"
    assert call.started_at == datetime(2021, 6, 17, 14, 14, 31, tzinfo=HCM)
    assert call.answered_at == datetime(2021, 6, 17, 14, 14, 33, tzinfo=HCM)
    assert call.ended_at == datetime(2021, 6, 17, 14, 14, 56, tzinfo=HCM)
    assert call.duration == 25
    assert call.billsec == 23
    assert call.direction is Direction.OUTBOUND
    assert call.direction_raw == "outbound"
    assert call.extension == "101"
    assert call.agent == "101"
    assert call.to_number == "0899888999"
    assert call.customer_id == "KH1"
    assert call.status == "answered"


def test_flex_without_recording():
    call = parse_record(FLEX_PAGE["data"][1], HCM)
    assert call.recording_url is None
    assert call.answered_at is None
    assert call.billsec == 0


def test_single_cdr_sample_parses():
    call = parse_record(SINGLE_DEFAULT, HCM)
    assert call.cdr_id == "01b7d166-b564-42ec-80a1-4ad343225934"
    assert call.customer_id == "KH1"


def test_mappings_are_detected_per_record():
    rows = [DEFAULT_PAGE["data"][0], FLEX_PAGE["data"][0]]
    start = datetime(2021, 1, 1, tzinfo=HCM)
    end = datetime(2022, 1, 1, tzinfo=HCM)
    page, ids = collect_page(rows, parse_record, HCM, start, end, set())
    assert [c.cdr_id for c in page.records] == ids
    assert [bool(c.raw.get("cdrId")) for c in page.records] == [False, True]


def test_offset_timestamps_are_kept():
    record = copy.deepcopy(DEFAULT_PAGE["data"][0])
    record["time_started"] = "2021-02-17T10:30:35Z"
    assert parse_record(record, HCM).started_at == datetime(2021, 2, 17, 10, 30, 35, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": ""}, "missing id"),
        ({"id": None}, "missing id"),
        ({"time_started": ""}, "missing time_started"),
        ({"time_started": "yesterday"}, "time_started"),
        ({"duration": "eleven"}, "duration"),
        ({"time_ended": 12.5e20}, "time_ended"),
    ],
)
def test_bad_records_are_refused_with_a_reason(change, reason):
    record = copy.deepcopy(DEFAULT_PAGE["data"][0])
    record.update(change)
    with pytest.raises(BadRecordError, match=reason):
        parse_record(record, HCM)


@pytest.mark.parametrize("row", [None, 5, "x", [1, 2]])
def test_non_object_record_is_refused(row):
    with pytest.raises(BadRecordError, match="not an object"):
        parse_record(row, HCM)


def test_a_bad_record_does_not_cost_the_good_ones_on_its_page():
    bad = copy.deepcopy(DEFAULT_PAGE["data"][0])
    bad["time_started"] = "garbage"
    rows = [DEFAULT_PAGE["data"][0], bad, FLEX_PAGE["data"][0]]
    page, ids = collect_page(
        rows,
        parse_record,
        HCM,
        datetime(2021, 1, 1, tzinfo=HCM),
        datetime(2022, 1, 1, tzinfo=HCM),
        set(),
    )
    assert len(page.records) == 2
    assert len(page.skipped) == 1
    assert "time_started" in page.skipped[0]
    assert len(ids) == 3


def test_the_same_cdr_on_two_pages_is_listed_once():
    seen: set[str] = set()
    start, end = datetime(2021, 1, 1, tzinfo=HCM), datetime(2022, 1, 1, tzinfo=HCM)
    first, _ = collect_page(DEFAULT_PAGE["data"], parse_record, HCM, start, end, seen)
    again = copy.deepcopy(DEFAULT_PAGE["data"][1])
    again["id"] = again["id"].strip()  # the same CDR, without the trailing space this time
    second, _ = collect_page([again], parse_record, HCM, start, end, seen)
    assert len(first.records) == 2
    assert second.records == []
    assert second.duplicates == 1


def test_records_outside_the_window_are_dropped():
    start = datetime(2021, 2, 17, 17, 30, 35, tzinfo=HCM)  # exactly the first call's start
    end = datetime(2021, 2, 18, 17, 20, 58, tzinfo=HCM)  # exactly the second call's start
    page, _ = collect_page(DEFAULT_PAGE["data"], parse_record, HCM, start, end, set())
    assert [c.sip_call_id for c in page.records] == ["112233aabbccddee.."]
    assert page.outside == 1
