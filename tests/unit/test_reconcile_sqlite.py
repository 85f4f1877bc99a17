"""The reconcile's SQLite comparison against the in-memory one it replaced, on random
inputs: the same findings in the same order, the same days, totals, verdict, calls to
fix and rendered text (tests/unit/reconcile_oracle.py is the old code, kept as oracle).

The inputs are what a month can hold: a call listed twice (on one page, across
pages, with other times), manifest lines of a call read twice (the last wins),
lines of calls no longer listed (with or without a time or a manifest key),
another provider's calls, unreadable CDRs, the state's failures, calls a
--fix archived, tombstones; ids with line breaks, formulas, NUL and lone
surrogates, times in several zones around the range's edges.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.lone_surrogates import printable as encodable
from archiver.models import CallRecord, Provider, call_to_dict
from archiver.retrieval.reconcile import (
    ArchivedRef,
    Identity,
    Reconciliation,
    Report,
    to_csv,
    to_json,
    to_lines,
)
from tests.unit.reconcile_oracle import OldReconciliation, old_to_json

SOURCE_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
ZONES = [SOURCE_TZ, ZoneInfo("UTC"), ZoneInfo("America/New_York")]
SINCE = datetime(2021, 3, 1, tzinfo=SOURCE_TZ)
HOSTILE = ["c1", "c2", "c10", "=SUM(1)", "-", "x\nCOMPLETE", "\ud800", "\udfff z", "é", "z\x00", ""]
IDS = st.sampled_from(HOSTILE) | st.text(max_size=3)
PROVIDERS = st.sampled_from(list(Provider))
TIMES = st.builds(
    lambda minutes, zone: (SINCE + timedelta(minutes=minutes)).astimezone(zone),
    # Few distinct times: findings of one time are ordered by id, then kind.
    st.sampled_from([-1441, -1, 0, 1, 1439, 1440, 2000, 4321]) | st.integers(-1500, 4 * 1440),
    st.sampled_from(ZONES) | st.just(SOURCE_TZ),
)


def _call(provider: Provider, cdr_id: str, sip: str, started: datetime, rec: bool) -> CallRecord:
    url = f"https://rec.example/{len(cdr_id)}.wav" if rec else None
    raw = {"id": cdr_id}
    return CallRecord(provider, cdr_id, sip, started, recording_url=url, raw=raw)


CALLS = st.builds(_call, PROVIDERS, IDS, IDS, TIMES, st.booleans())
REFS = st.builds(ArchivedRef, IDS, st.none() | TIMES, st.none() | IDS)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    calls = draw(st.lists(CALLS, max_size=20))
    known = [(c.provider.value, c.cdr_id) for c in calls]
    idents = st.tuples(st.sampled_from([p.value for p in Provider]), IDS)
    if known:
        idents = st.sampled_from(known) | idents
    pages = []
    if calls:
        pages = draw(st.lists(st.lists(st.sampled_from(calls), max_size=8), max_size=5))
    return {
        "until": SINCE + timedelta(hours=draw(st.integers(1, 72))),
        "pages": [(page, draw(st.lists(IDS, max_size=2))) for page in pages],
        "archived": draw(st.lists(st.tuples(idents, REFS), max_size=20)),
        "failures": draw(st.dictionaries(idents, IDS, max_size=6)),
        "now": draw(st.sets(idents, max_size=6)),
        "fixed": draw(st.sets(idents, max_size=8)),
        "failures_after": draw(st.dictionaries(idents, IDS, max_size=6)),
        "gone": draw(st.sets(idents, max_size=8)),
        "bad": draw(st.integers(0, 3)),
    }


def _same(new: Report, old: Report) -> None:
    assert len(new.findings) == len(list(new.findings))
    assert list(new.findings) == old.findings
    # The lines compare the times as written (an offset, not only the instant).
    assert [f.line() for f in new.findings] == [f.line() for f in old.findings]
    assert new.days == old.days
    assert new.totals() == old.totals()
    assert (new.complete, new.fixed) == (old.complete, old.fixed)
    assert [_record(c) for c in new.to_fix] == [_record(c) for c in old.to_fix]
    assert to_lines(new) == to_lines(old)
    assert to_csv(new) == to_csv(old)
    # The same text, but a lone surrogate escaped (the old text could not be written).
    text = to_json(new, {"fix": None})
    assert text == encodable(old_to_json(old, {"fix": None}))
    assert json.loads(text) == json.loads(old_to_json(old, {"fix": None}))
    text.encode()


def _record(call: CallRecord) -> dict[str, Any]:
    return {k: v for k, v in call_to_dict(call).items() if k != "raw"}


@settings(max_examples=200)
@given(scenarios())
def test_the_scratch_tables_report_what_the_dicts_did(case: dict[str, Any]) -> None:
    args = ("cdr_v2", SINCE, case["until"], SOURCE_TZ)
    archived: dict[Identity, ArchivedRef] = dict(case["archived"])  # the last line wins
    old = OldReconciliation(*args, archived, case["bad"])
    new = Reconciliation(*args, bad_manifest_lines=case["bad"])
    new.add_archived(case["archived"])
    for records, skipped in case["pages"]:
        old.add_page(records, skipped)
        new.add_page(records, skipped)

    first_old = old.report(case["failures"], archived_now=case["now"])
    first = new.report(case["failures"], archived_now=case["now"])
    _same(first, first_old)

    # --fix: of the calls found archived after it, those the first report had to fix.
    to_fix = {(c.provider.value, c.cdr_id) for c in first_old.to_fix}
    fixed = {i for i in case["fixed"] if i in to_fix}
    new.mark_fixed(first, case["fixed"])
    again_old = old.report(case["failures_after"], archived_now=fixed)
    again = new.report(case["failures_after"])
    _same(again, again_old)
    _same(first, first_old)  # a report reads what it was made of, not the next one's

    assert new.disposed(case["gone"]) == len(case["gone"] & (set(archived) | fixed))


def test_findings_of_one_time_are_ordered_by_id_then_kind_then_listing() -> None:
    at = SINCE + timedelta(hours=9)
    listed = [
        _call(Provider.CDR_V2, "c", "s1", at, True),  # FAILED
        _call(Provider.EPACIFIC, "c", "s2", at, True),  # MISSING (another provider's)
        _call(Provider.CDR_V2, "b", "s3", at, True),  # MISSING
        _call(Provider.EPACIFIC, "b", "s4", at, True),  # MISSING, listed after
    ]
    lines = [(("cdr_v2", "a"), ArchivedRef("s0", at, "m"))]  # UNKNOWN-AT-SOURCE
    old = OldReconciliation("cdr_v2", SINCE, SINCE + timedelta(days=1), SOURCE_TZ, dict(lines))
    new = Reconciliation("cdr_v2", SINCE, SINCE + timedelta(days=1), SOURCE_TZ, dict(lines))
    old.add_page(listed, [])
    new.add_page(listed, [])
    failed = {("cdr_v2", "c"): "never_available"}
    report = new.report(failed)
    assert [(f.kind.value, f.cdr_id, f.sip_call_id) for f in report.findings] == [
        ("UNKNOWN-AT-SOURCE", "a", "s0"),
        ("MISSING", "b", "s3"),
        ("MISSING", "b", "s4"),
        ("FAILED", "c", "s1"),
        ("MISSING", "c", "s2"),
    ]
    _same(report, old.report(failed))


def test_a_report_of_another_reconciliation_is_refused() -> None:
    one = Reconciliation("cdr_v2", SINCE, SINCE + timedelta(days=1), SOURCE_TZ)
    other = Reconciliation("cdr_v2", SINCE, SINCE + timedelta(days=1), SOURCE_TZ)
    with pytest.raises(ValueError, match="not a report of this reconciliation"):
        other.mark_fixed(one.report(), [])


def test_without_fix_no_recording_url_is_written_to_the_scratch_file(tmp_path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "scratch.sqlite")
    rec = Reconciliation(
        "cdr_v2", SINCE, SINCE + timedelta(days=1), SOURCE_TZ, db=db, keep_records=False
    )
    secret = "https://rec.example/1.wav?token=s3cr3t"
    call = CallRecord(Provider.CDR_V2, "c1", "s1", SINCE, recording_url=secret)
    rec.add_page([call], [])
    report = rec.report()
    assert [f.cdr_id for f in report.findings] == ["c1"]
    db.commit()
    assert b"s3cr3t" not in (tmp_path / "scratch.sqlite").read_bytes()
    with pytest.raises(ValueError, match="kept no records"):
        list(report.to_fix)


async def test_fix_hands_the_missing_calls_over_a_page_at_a_time() -> None:
    import asyncio

    from archiver.commands.reconcile_fix import MissingCalls, span

    calls = [_call(Provider.CDR_V2, f"c{n}", "s", SINCE + timedelta(minutes=n), True) for n in range(5)]  # fmt: skip  # noqa: E501
    rec = Reconciliation("cdr_v2", SINCE, SINCE + timedelta(days=1), SOURCE_TZ)
    rec.add_page(calls, [])
    to_fix = rec.report().to_fix
    pages: list[list[str]] = []

    class Intake:
        def __init__(self, stop: asyncio.Event | None = None) -> None:
            self.stop = stop

        async def take(self, page):
            pages.append([c.cdr_id for c in page.records])
            if self.stop is not None and len(pages) == 2:
                self.stop.set()  # a signal: the rest is left for the next run

    await MissingCalls(to_fix, batch=2).run(Intake(), asyncio.Event())
    assert pages == [["c0", "c1"], ["c2", "c3"], ["c4"]]
    pages.clear()
    stop = asyncio.Event()
    await MissingCalls(to_fix, batch=2).run(Intake(stop), stop)
    assert pages == [["c0", "c1"], ["c2", "c3"]]
    assert span(to_fix) == (SINCE, SINCE + timedelta(minutes=4, seconds=1))
    assert span([]) is None


def test_a_lone_surrogate_in_an_id_does_not_stop_the_report_half_way() -> None:
    # A provider's JSON may send "\ud800" in an id: it has no UTF-8 form.
    from archiver.retrieval.reconcile import write_csv, write_json

    rec = Reconciliation("cdr_v2", SINCE, SINCE + timedelta(days=1), SOURCE_TZ)
    hostile = "c\ud800z"
    rec.add_page([_call(Provider.CDR_V2, hostile, "s\udc80", SINCE, True)], ["why \ud800"])
    report = rec.report()
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", newline="")  # strict, as stdout is
    write_json(report, out)
    out.flush()
    doc = json.loads(raw.getvalue().decode())
    assert [f["cdr_id"] for f in doc["findings"]] == [hostile, "-"]  # the exact id
    assert doc["findings"][1]["detail"] == "why \ud800"
    raw.seek(0), raw.truncate()
    write_csv(report, out)
    out.flush()
    assert "c\\ud800z" in raw.getvalue().decode()  # its escaped spelling
