from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from archiver.errors import BadRecordError, BadResponseError
from archiver.models import Direction, Provider
from archiver.settings import SourceSettings
from archiver.sources.epacific import EpacificSource, _records, parse_record
from archiver.sources.mapping import collect_page

HCM = ZoneInfo("Asia/Ho_Chi_Minh")

RECORD = {
    "callid": "5f1c-abc",
    "direction": "inbound",
    "cid_name": "Thanh Nguyen",
    "source": "0899888999",
    "destination": "1005",
    "recording": "https://rec.example.vn/5f1c-abc.mp3",
    "start": "2021-02-17 17:30:35",
    "tta": 8,
    "duration": "00:01:05",
    "pdd": 1.2,
    "mos": 4.3,
    "status": "NORMAL_CLEARING",
}


def test_record_mapping():
    call = parse_record(RECORD, HCM)
    assert call.provider is Provider.EPACIFIC
    assert call.cdr_id == call.sip_call_id == "5f1c-abc"
    assert call.started_at == datetime(2021, 2, 17, 17, 30, 35, tzinfo=HCM)
    assert call.answered_at == call.started_at + timedelta(seconds=8)
    assert call.ended_at == call.started_at + timedelta(seconds=8 + 65)
    assert call.duration == 65
    assert call.billsec == 65
    assert call.direction is Direction.INBOUND
    assert call.from_number == "0899888999"
    assert call.to_number == "1005"
    assert call.agent_name == "Thanh Nguyen"
    assert call.cause == "NORMAL_CLEARING"
    assert call.recording_url == "https://rec.example.vn/5f1c-abc.mp3"


@pytest.mark.parametrize("field", ["callid", "call_id", "uuid", "sip_call_id"])
def test_call_id_field_variants(field):
    record = {k: v for k, v in RECORD.items() if k != "callid"} | {field: "X1"}
    assert parse_record(record, HCM).cdr_id == "X1"


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("00:00:00", 0), ("01:02:03", 3723), ("2:05", 125), (42, 42), ("17", 17)],
)
def test_duration_formats(duration, seconds):
    assert parse_record(RECORD | {"duration": duration}, HCM).duration == seconds


def test_unanswered_call_has_no_answer_time():
    call = parse_record(RECORD | {"tta": 0, "duration": "00:00:00", "recording": ""}, HCM)
    assert call.answered_at is None
    assert call.billsec is None
    assert call.recording_url is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"callid": ""}, "missing callid"),
        ({"start": "17/02/2021 nonsense"}, "start"),
        ({"duration": "1:99:00"}, "duration"),
        ({"tta": "soon"}, "tta"),
    ],
)
def test_bad_records(change, reason):
    with pytest.raises(BadRecordError, match=reason):
        parse_record(RECORD | change, HCM)


@pytest.mark.parametrize(
    "body",
    [
        {"data": [RECORD]},
        {"cdrs": [RECORD]},
        [RECORD],
        {"data": RECORD},
        RECORD,
    ],
)
def test_response_shapes(body):
    assert len(_records(body, "POST x")) == 1


def test_an_error_body_is_a_clear_error():
    with pytest.raises(BadResponseError, match="the API reported an error: bad key"):
        _records({"status": "error", "message": "bad key"}, "POST x")
    with pytest.raises(BadResponseError, match="no list of CDRs"):
        _records({"status": "success"}, "POST x")


def _source() -> EpacificSource:
    settings = SourceSettings(kind="epacific", api_key="k", api_secret="s")
    return EpacificSource(client=None, settings=settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("10:00:00", "11:00:00", ("10:00", "11:00")),
        ("10:00:30", "10:05:30", ("10:00", "10:06")),
        ("10:00:59", "10:01:00", ("10:00", "10:01")),
    ],
)
def test_date_range_covers_the_window_in_whole_minutes(start, end, expected):
    day = "2021-02-17 "
    rng = _source().date_range(
        datetime.fromisoformat(day + start).replace(tzinfo=HCM),
        datetime.fromisoformat(day + end).replace(tzinfo=HCM),
    )
    assert rng == {"from": day + expected[0], "to": day + expected[1]}


def test_date_range_is_written_in_the_source_timezone():
    utc_start = datetime.fromisoformat("2021-02-17T03:00:00+00:00")
    rng = _source().date_range(utc_start, utc_start + timedelta(minutes=5))
    assert rng == {"from": "2021-02-17 10:00", "to": "2021-02-17 10:05"}


def test_minute_edges_no_call_lost_or_doubled_between_adjacent_windows():
    # Calls at every second around a minute edge; the API returns whole minutes,
    # each window keeps only its own calls.
    edge = datetime(2021, 2, 17, 10, 5, tzinfo=HCM)
    rows = [
        RECORD
        | {"callid": f"c{i}", "start": (edge + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")}
        for i in range(-90, 90)
    ]
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    mid = edge + timedelta(seconds=17)  # a window edge that is not on a minute
    a, _ = collect_page(rows, parse_record, HCM, edge - timedelta(minutes=2), mid, seen_a)
    b, _ = collect_page(rows, parse_record, HCM, mid, edge + timedelta(minutes=2), seen_b)
    ids_a = {c.cdr_id for c in a.records}
    ids_b = {c.cdr_id for c in b.records}
    assert not ids_a & ids_b
    assert ids_a | ids_b == {r["callid"] for r in rows}
    assert "c17" in ids_b
    assert "c16" in ids_a
