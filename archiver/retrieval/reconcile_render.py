"""A reconcile's report as a table, one JSON document or one CSV table, written as read.

Each writer streams the findings to its output one at a time (a month never
archived names every call of it); the ``to_*`` functions return the same text
as a string, for tests and small reports.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import Any, TextIO

from archiver.lone_surrogates import printable
from archiver.retrieval.reconcile_report import DayTotals, Report, finding_json

_DAY_FIELDS = ("cdrs", "with_recording", "archived", "missing")
CSV_COLUMNS = ("record", "date", "call_started_at", "cdr_id", "sip_call_id", "detail", *_DAY_FIELDS)


def verdict(report: Report) -> str:
    """The last line: complete or not, and why."""
    t = report.totals()
    if report.complete:
        return (
            f"COMPLETE: all {t['with_recording']} recording(s) listed by the provider are archived"
        )
    parts = [f"{t['missing']} recording(s) missing"]
    if t["failed"]:
        parts.append(f"{t['failed']} of them failed permanently")
    if t["unreadable_cdrs"]:
        parts.append(f"{t['unreadable_cdrs']} CDR(s) unreadable")
    return "INCOMPLETE: " + ", ".join(parts)


def iter_lines(report: Report) -> Iterator[str]:
    """The table format: one line per finding, per day, the totals and the verdict."""
    for f in report.findings:
        yield f.line()
    for d in report.days:
        counts = " ".join(f"{name}={getattr(d, name)}" for name in _DAY_FIELDS)
        yield f"{'DAY':<17} {d.day.isoformat()}  {counts}"
    totals = " ".join(f"{k}={v}" for k, v in report.totals().items())
    yield f"{'TOTAL':<17} {totals}"
    yield verdict(report)


def to_lines(report: Report) -> list[str]:
    """:func:`iter_lines` as a list."""
    return list(iter_lines(report))


def write_json(report: Report, out: TextIO, extra: Mapping[str, Any] | None = None) -> None:
    """One JSON document: the range, the verdict, the totals, the days and the findings.

    The same text as ``json.dumps(document, ensure_ascii=False, indent=2)``, the
    findings (last) written one by one: the document's head is dumped without
    them, then each finding indented to its place.
    """
    body: dict[str, Any] = {
        **(extra or {}),
        "provider": report.provider,
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "complete": report.complete,
        "totals": report.totals(),
        "days": [{**asdict(d), "day": d.day.isoformat()} for d in report.days],
    }
    if not report.findings:
        out.write(printable(json.dumps({**body, "findings": []}, ensure_ascii=False, indent=2)))
        out.write("\n")
        return
    body.pop("findings", None)  # the findings are written last, whatever an extra says
    head = printable(json.dumps(body, ensure_ascii=False, indent=2))
    out.write(head[: -len("\n}")] + ',\n  "findings": [')
    separator = "\n"
    for f in report.findings:
        # Strings are dumped with their line breaks escaped: every "\n" here is
        # the layout's, so indenting after each one indents the whole finding.
        text = printable(json.dumps(finding_json(f), ensure_ascii=False, indent=2))
        out.write(separator + "    " + text.replace("\n", "\n    "))
        separator = ",\n"
    out.write("\n  ]\n}\n")


def to_json(report: Report, extra: Mapping[str, Any] | None = None) -> str:
    """:func:`write_json` as a string."""
    out = io.StringIO()
    write_json(report, out, extra)
    return out.getvalue()


def write_csv(report: Report, out: TextIO) -> None:
    """One CSV table: a row per finding (record = its kind), then a DAY row per day."""
    # CRLF (RFC 4180) also makes the writer quote a field holding a bare CR,
    # which a "\n" terminator would leave unquoted (a reader would split the row).
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for f in report.findings:
        started = f.call_started_at.isoformat() if f.call_started_at else ""
        day = f.day.isoformat() if f.day else ""
        writer.writerow(_cells([f.kind.value, day, started, f.cdr_id, f.sip_call_id, f.detail]))
    for d in report.days:
        writer.writerow(["DAY", d.day.isoformat(), "", "", "", "", *_day_counts(d)])


def to_csv(report: Report) -> str:
    """:func:`write_csv` as a string."""
    out = io.StringIO()
    write_csv(report, out)
    return out.getvalue()


def _day_counts(d: DayTotals) -> list[int]:
    return [getattr(d, name) for name in _DAY_FIELDS]


def _cells(values: Sequence[str]) -> list[str]:
    # The ids and reasons come from the provider: a spreadsheet must not run one
    # as a formula (CSV injection).
    cells = [printable(v) for v in values]
    return ["'" + v if v[:1] in ("=", "+", "-", "@") and v != "-" else v for v in cells]
