"""The reconcile's comparison and its renderings (pure)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from archiver.models import CallRecord, Provider
from archiver.retrieval.reconcile import (
    ArchivedRef,
    Kind,
    Reconciliation,
    to_csv,
    to_json,
    to_lines,
    verdict,
)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
SINCE = datetime(2021, 3, 1, tzinfo=TZ)
UNTIL = datetime(2021, 3, 4, tzinfo=TZ)


def call(n: int, *, day: int = 1, recording: bool = True, provider=Provider.CDR_V2) -> CallRecord:
    return CallRecord(
        provider=provider,
        cdr_id=f"c{n}",
        sip_call_id=f"s{n}@pbx",
        started_at=datetime(2021, 3, day, 9, n, tzinfo=TZ),
        recording_url=f"https://rec.example/{n}.wav" if recording else None,
    )


def ref(c: CallRecord) -> ArchivedRef:
    return ArchivedRef(c.sip_call_id, c.started_at, f"manifests/date=2021-03-0{c.started_at.day}/x")


def ident(c: CallRecord) -> tuple[str, str]:
    return (c.provider.value, c.cdr_id)


def reconciliation(archived: list[CallRecord], **kw) -> Reconciliation:
    return Reconciliation("cdr_v2", SINCE, UNTIL, TZ, {ident(c): ref(c) for c in archived}, **kw)


def test_everything_archived_is_complete_with_every_day_counted():
    calls = [call(1), call(2, recording=False), call(3, day=3)]
    rec = reconciliation([calls[0], calls[2]])
    rec.add_page(calls, [])
    report = rec.report()
    assert report.complete
    assert report.findings == []
    # The day without calls is reported too: an outage shows as a row of zeros.
    assert [(d.day, d.cdrs, d.with_recording, d.archived, d.missing) for d in report.days] == [
        (date(2021, 3, 1), 2, 1, 1, 0),
        (date(2021, 3, 2), 0, 0, 0, 0),
        (date(2021, 3, 3), 1, 1, 1, 0),
    ]
    assert verdict(report).startswith("COMPLETE")


def test_missing_failed_unknown_and_a_call_listed_twice():
    listed = [call(1), call(2), call(3), call(4, recording=False)]
    purged = call(9, day=2)
    other_provider = call(8, provider=Provider.EPACIFIC)
    rec = reconciliation([listed[0], purged, other_provider])
    rec.add_page(listed[:2], [])
    rec.add_page(listed[1:], [])  # the overlap of two pages counts once
    report = rec.report({ident(listed[2]): "never_available: 404 after the deadline"})
    kinds = {(f.kind, f.cdr_id) for f in report.findings}
    # The other provider's lines are not this listing's business.
    assert kinds == {(Kind.MISSING, "c2"), (Kind.FAILED, "c3"), (Kind.UNKNOWN_AT_SOURCE, "c9")}
    failed = next(f for f in report.findings if f.kind is Kind.FAILED)
    assert "never_available" in failed.detail
    assert [c.cdr_id for c in report.to_fix] == ["c2"]  # a permanent failure is not refetched
    assert not report.complete
    assert report.totals()["cdrs"] == 4
    assert report.totals()["missing"] == 2
    assert report.totals()["failed"] == 1
    assert verdict(report) == "INCOMPLETE: 2 recording(s) missing, 1 of them failed permanently"


def test_fixed_calls_count_as_archived():
    listed = [call(1), call(2)]
    rec = reconciliation([])
    rec.add_page(listed, [])
    report = rec.report(archived_now={ident(listed[0])})
    assert {(f.kind, f.cdr_id) for f in report.findings} == {
        (Kind.FIXED, "c1"),
        (Kind.MISSING, "c2"),
    }
    assert (report.days[0].archived, report.days[0].missing) == (1, 1)
    assert report.totals()["fixed"] == 1


def test_an_unreadable_cdr_leaves_the_range_incomplete():
    rec = reconciliation([call(1)])
    rec.add_page([call(1)], ["record 7: missing start"])
    report = rec.report()
    assert not report.complete
    assert [f.kind for f in report.findings] == [Kind.UNREADABLE]
    assert "1 CDR(s) unreadable" in verdict(report)


def test_days_are_local_dates_of_the_source_zone():
    # 23:30 in Ho Chi Minh City is 16:30 UTC: the call belongs to the local day.
    late = CallRecord(
        provider=Provider.CDR_V2,
        cdr_id="late",
        sip_call_id="late@pbx",
        started_at=datetime(2021, 3, 1, 23, 30, tzinfo=TZ).astimezone(ZoneInfo("UTC")),
        recording_url="https://rec.example/late.wav",
    )
    rec = reconciliation([])
    rec.add_page([late], [])
    report = rec.report()
    assert report.days[0].missing == 1
    assert report.findings[0].day == date(2021, 3, 1)


def test_renderings_carry_the_ids_times_and_totals():
    rec = reconciliation([])
    hostile = CallRecord(
        provider=Provider.CDR_V2,
        cdr_id="=HYPERLINK(1)",
        sip_call_id="@evil",
        started_at=datetime(2021, 3, 2, 10, 0, tzinfo=TZ),
        recording_url="https://rec.example/x.wav",
    )
    rec.add_page([call(1), hostile], [])
    report = rec.report()
    lines = to_lines(report)
    assert lines[0].startswith("MISSING ")
    assert "2021-03-01T09:01:00+07:00" in lines[0]
    assert "cdr_id=c1 sip_call_id=s1@pbx" in lines[0]
    assert any(ln.startswith("DAY") and "2021-03-02" in ln and "missing=1" in ln for ln in lines)
    assert lines[-2].startswith("TOTAL")
    assert "missing=2" in lines[-2]
    doc = json.loads(to_json(report))
    assert doc["complete"] is False
    assert doc["days"][1] == {
        "day": "2021-03-02",
        "cdrs": 1,
        "with_recording": 1,
        "archived": 0,
        "missing": 1,
    }
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    missing = [r for r in rows if r["record"] == "MISSING"]
    # Provider-sent ids cannot become spreadsheet formulas.
    assert {r["cdr_id"] for r in missing} == {"c1", "'=HYPERLINK(1)"}
    assert {r["sip_call_id"] for r in missing} == {"s1@pbx", "'@evil"}
    assert [r["date"] for r in rows if r["record"] == "DAY"] == [
        "2021-03-01",
        "2021-03-02",
        "2021-03-03",
    ]


@pytest.mark.parametrize(
    ("since", "until", "days"),
    [
        (SINCE, SINCE + timedelta(hours=1), 1),
        (SINCE, UNTIL, 3),
        (SINCE + timedelta(hours=23), SINCE + timedelta(hours=25), 2),
    ],
)
def test_the_days_of_a_range(since, until, days):
    report = Reconciliation("cdr_v2", since, until, TZ, {}).report()
    assert len(report.days) == days
    assert report.complete


def test_a_hostile_id_cannot_add_a_line_to_the_table():
    forged = "x\nCOMPLETE: all 0 recording(s) listed by the provider are archived"
    hostile = CallRecord(
        provider=Provider.CDR_V2,
        cdr_id=forged,
        sip_call_id="s\r\x1b[2K\u2028y",
        started_at=datetime(2021, 3, 2, 10, 0, tzinfo=TZ),
        recording_url="https://rec.example/x.wav",
    )
    rec = reconciliation([])
    rec.add_page([hostile], ["record 3: bad time\nCOMPLETE"])
    report = rec.report()
    lines = to_lines(report)
    text = "\n".join(lines)
    # One line per finding, per day, the totals and the verdict: nothing more.
    assert len(text.splitlines()) == len(report.findings) + len(report.days) + 2
    assert lines[0].endswith(
        "cdr_id=x\\nCOMPLETE: all 0 recording(s) listed by the provider "
        "are archived sip_call_id=s\\r\\x1b[2K\\u2028y"
    )
    assert lines[-1].startswith("INCOMPLETE")
    # The machine formats keep the exact values.
    assert json.loads(to_json(report))["findings"][0]["cdr_id"] == forged
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert rows[0]["cdr_id"] == forged
