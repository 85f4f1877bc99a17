"""Property tests: the CDR parsers and a page's collection, fed anything a provider might send.

Malformed, missing, wrongly typed and extreme fields and timestamps: a record
either parses into a CallRecord that every later stage can store (state,
object key, manifest line) or is refused with BadRecordError and a reason;
never another exception. On a page, every bad row is skipped with its reason
and counted, and no good row on the same page is lost.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.errors import BadRecordError
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord, call_from_dict, call_to_dict
from archiver.settings import DEFAULT_KEY_TEMPLATE
from archiver.sources import cdr_v2, epacific
from archiver.sources.mapping import collect_page
from archiver.state.sqlite import encode_time
from archiver.storage.base import ObjectProof
from archiver.storage.keys import render_key, validate_key
from archiver.storage.layout import manifest_date

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
PARSERS = {"cdr_v2": cdr_v2.parse_record, "epacific": epacific.parse_record}
WINDOW = (datetime(2021, 2, 17, tzinfo=HCM), datetime(2021, 2, 18, tzinfo=HCM))

# -- values ------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**4000), max_value=10**4000),  # JSON allows up to 4300 digits
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8", categories=["Cs", "Cc", "Zs"])),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))  # noqa: DTZ001
in_day = st.datetimes(min_value=datetime(2021, 2, 17), max_value=datetime(2021, 2, 17, 23, 59))  # noqa: DTZ001
timestamps = st.one_of(
    in_day.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    moments.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    moments.map(lambda d: d.isoformat()),
    st.builds(
        lambda d, minutes: (
            d.replace(tzinfo=None).isoformat()
            + f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        ),
        moments,
        st.integers(min_value=-1439, max_value=1439),
    ),
    moments.map(lambda d: d.strftime("%Y/%m/%d %H:%M:%S")),
    moments.map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["", " ", "0000-00-00 00:00:00", "0000-00-00", "yesterday", "17:30", "NaN"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    json_values,
)
durations = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.builds(
        lambda h, m, s: f"{h:02d}:{m:02d}:{s:02d}",
        st.integers(0, 10**9),
        st.integers(0, 99),
        st.integers(0, 99),
    ),
    st.text(max_size=12),
    json_values,
)
ids = st.one_of(st.text(min_size=1, max_size=300), st.integers(), json_values)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value, or the field missing (a sentinel removed below)."""
    return st.one_of(st.just(_MISSING), strategy)


_MISSING = object()


def record_of(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({name: maybe(s) for name, s in fields.items()}).map(
        lambda d: {k: v for k, v in d.items() if v is not _MISSING}
    )


DEFAULT_FIELDS = {
    "id": ids,
    "sip_call_id": ids,
    "time_started": timestamps,
    "time_answered": timestamps,
    "time_ended": timestamps,
    "duration": durations,
    "billsec": durations,
    "direction": json_values,
    "recording_url": json_values,
    "extension": json_values,
    "username": json_values,
    "lastname": json_values,
    "press_key": json_values,
}
FLEX_FIELDS = {
    "cdrId": ids,
    "sip_call_id": ids,
    "dialAt": timestamps,
    "answeredAt": timestamps,
    "hangupAt": timestamps,
    "duration": durations,
    "billsec": durations,
    "recordFile": json_values,
    "extensionId": json_values,
}
EPACIFIC_FIELDS = {
    "callid": ids,
    "start": timestamps,
    "tta": durations,
    "duration": durations,
    "direction": json_values,
    "recording": json_values,
    "cid_name": json_values,
    "status": json_values,
}
RECORDS = {
    "cdr_v2": st.one_of(record_of(DEFAULT_FIELDS), record_of(FLEX_FIELDS), json_values),
    "epacific": st.one_of(record_of(EPACIFIC_FIELDS), json_values),
}

# -- what a parsed record must be good for ------------------------------------------


def assert_usable(call: CallRecord) -> None:
    """Everything later stages do with a call that is inside a listing window."""
    assert isinstance(call.cdr_id, str)
    assert call.cdr_id.strip()
    assert call.sip_call_id.strip()
    for moment in (call.started_at, call.answered_at, call.ended_at):
        assert moment is None or moment.utcoffset() is not None
    for number in (call.duration, call.billsec):
        assert number is None or (isinstance(number, int) and number >= 0)
    # The state store keeps the record as UTF-8 JSON.
    stored = json.dumps(call_to_dict(call), ensure_ascii=False).encode("utf-8")
    assert call_from_dict(json.loads(stored)) == call
    encode_time(call.started_at)
    # The object key and the manifest line.
    key = render_key(DEFAULT_KEY_TEMPLATE, call, "wav", HCM)
    validate_key(key)
    entry = ManifestEntry.build(
        call,
        proof=ObjectProof(),
        object_key=key,
        sha256="0" * 64,
        size=1,
        content_type="audio/wav",
        archived_at=datetime(2021, 2, 17, tzinfo=UTC),
    )
    entry.to_line().encode("utf-8")
    manifest_date(call, HCM)


def in_window(call: CallRecord) -> bool:
    return WINDOW[0] <= call.started_at < WINDOW[1]


@pytest.mark.parametrize("kind", sorted(PARSERS))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_record_parses_or_is_refused_with_a_reason(kind: str, data: st.DataObject) -> None:
    record = data.draw(RECORDS[kind])
    try:
        call = PARSERS[kind](record, HCM)
    except BadRecordError as exc:
        reason = str(exc)
    else:
        if in_window(call):
            assert_usable(call)
        return
    assert reason, "a refusal without a reason"


# -- pages ------------------------------------------------------------------------------


@st.composite
def good_records(draw: st.DrawFn, kind: str, n: int) -> list[dict[str, Any]]:
    """``n`` well-formed records with distinct ids, inside the window."""
    out = []
    for i in range(n):
        start = draw(
            st.datetimes(
                min_value=datetime(2021, 2, 17),  # noqa: DTZ001
                max_value=datetime(2021, 2, 17, 23, 59, 59),  # noqa: DTZ001
            )
        )
        when = start.strftime("%Y-%m-%d %H:%M:%S")
        ident = f"good-{i}-{draw(st.text(alphabet='abcdef0123456789', max_size=8))}"
        if kind == "epacific":
            out.append(
                {
                    "callid": ident,
                    "start": when,
                    "duration": "00:00:30",
                    "tta": 3,
                    "recording": f"https://rec.example.vn/{i}.wav",
                }
            )
        else:
            out.append(
                {
                    "id": ident,
                    "time_started": when,
                    "duration": 33,
                    "recording_url": f"https://rec.example.vn/{i}.wav",
                }
            )
    return out


def broken(kind: str) -> st.SearchStrategy[Any]:
    """Rows that cannot parse: not an object, no id, no start, or an unreadable field."""
    id_field, start_field = ("callid", "start") if kind == "epacific" else ("id", "time_started")
    base = {id_field: "bad", start_field: "2021-02-17 10:00:00"}
    return st.one_of(
        st.one_of(st.none(), st.integers(), st.text(), st.lists(scalars, max_size=3)),
        st.just({start_field: "2021-02-17 10:00:00"}),
        st.just({id_field: "bad-no-start"}),
        st.sampled_from(["yesterday", "2021-02-30 10:00:00", True, [1], {"a": 1}, 10**30]).map(
            lambda v: {**base, start_field: v}
        ),
        st.sampled_from(["eleven", -5, float("inf"), [], "99:99:99"]).map(
            lambda v: {**base, "duration": v}
        ),
    )


@pytest.mark.parametrize("kind", sorted(PARSERS))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bad_rows_never_cost_the_good_ones_on_their_page(kind: str, data: st.DataObject) -> None:
    good = data.draw(good_records(kind, data.draw(st.integers(0, 6))))
    bad = data.draw(st.lists(broken(kind), max_size=6))
    noise = data.draw(st.lists(RECORDS[kind], max_size=3))
    rows: list[Any] = [*good, *bad, *noise]
    order = data.draw(st.permutations(range(len(rows))))
    shuffled = [rows[i] for i in order]
    page, ids = collect_page(shuffled, PARSERS[kind], HCM, *WINDOW, set())
    got = [c.cdr_id for c in page.records]
    for record in good:
        ident = record.get("id") or record.get("callid")
        assert ident in got, f"good record {ident} lost"
    assert len(page.skipped) >= len(bad)
    assert all(reason for reason in page.skipped)
    assert len(ids) == len(shuffled)
    counted = len(page.records) + len(page.skipped) + page.duplicates + page.outside
    assert counted == len(shuffled)
    for call in page.records:
        assert_usable(call)


# -- the extremes named one by one (readable regressions of the properties above) -----


@pytest.mark.parametrize(
    ("kind", "record"),
    [
        ("epacific", {"callid": "x", "start": "2021-02-17 10:00:00", "tta": 10**20}),
        ("epacific", {"callid": "x", "start": "2021-02-17 10:00:00", "duration": 10**20}),
        ("epacific", {"callid": "x", "start": "9999-12-31 23:59:59", "tta": 5, "duration": 5}),
        ("cdr_v2", {"id": "x", "time_started": "2021-02-17 10:00:00", "sip_call_id": "a\ud800b"}),
        ("cdr_v2", {"id": "x\udcff", "time_started": "2021-02-17 10:00:00"}),
        ("cdr_v2", {"id": "x", "time_started": "2021-02-17 10:00:00", "press_key": "\ud83d"}),
        ("epacific", {"callid": "x", "start": "2021-02-17 10:00:00", "cid_name": "\udc80"}),
        ("cdr_v2", {"id": "x", "time_started": 10**400}),
        ("epacific", {"callid": "x", "start": -(10**400)}),
    ],
)
def test_extreme_values_are_refused_not_crashed_on(kind: str, record: dict[str, Any]) -> None:
    try:
        call = PARSERS[kind](record, HCM)
    except BadRecordError:
        return
    if in_window(call):
        assert_usable(call)


def test_window_edges_for_extreme_offsets() -> None:
    """A call at the window's edge, written with a far-off offset, lands on the right side."""
    edge = WINDOW[1]
    for minutes in (-1439, -60, 0, 60, 1439):
        offset = timedelta(minutes=minutes)
        local = (edge.astimezone(UTC) + offset).replace(tzinfo=None)
        sign = "+" if minutes >= 0 else "-"
        text = local.isoformat() + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        call = cdr_v2.parse_record({"id": "e", "time_started": text}, HCM)
        assert call.started_at == edge
        assert not in_window(call)
