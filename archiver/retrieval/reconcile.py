"""Completeness: the provider's CDRs of a range against the manifest of the same range (pure).

A :class:`Reconciliation` is fed the archived calls (from the manifest) first,
then the provider's listing page by page; :meth:`Reconciliation.report` says,
per call, what is not accounted for and, per day, how many CDRs, recordings,
archived and missing recordings there were. It keeps one small entry per
listed call and the full record only of the missing ones (which ``--fix``
archives), so a month of CDRs fits in memory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from archiver.models import CallRecord

Identity = tuple[str, str]  # (provider, cdr_id): what makes a call unique


class Kind(StrEnum):
    """What one reconcile line reports."""

    MISSING = "MISSING"  # a CDR with a recording URL and no manifest line
    FAILED = "FAILED"  # missing, and the state says it failed permanently (with why)
    FIXED = "FIXED"  # was missing; archived by this reconcile's --fix
    UNKNOWN_AT_SOURCE = "UNKNOWN-AT-SOURCE"  # archived, no longer listed (informational)
    UNREADABLE = "UNREADABLE"  # a CDR the provider sent that cannot be parsed


# Kinds that leave the range unaccounted for: the reconcile exits 5 on any of them.
# An unreadable CDR may carry a recording, so it cannot be signed off as complete.
OPEN_KINDS = frozenset({Kind.MISSING, Kind.FAILED, Kind.UNREADABLE})


@dataclass(frozen=True, slots=True)
class ArchivedRef:
    """What the comparison needs of one manifest line (a
    :class:`~archiver.manifest.entry.ManifestEntry`): three fields, not the whole
    line, so a month of lines stays small."""

    sip_call_id: str
    started_at: datetime | None
    manifest_key: str | None


@dataclass(frozen=True, slots=True)
class Finding:
    """One reported call (or unreadable record)."""

    kind: Kind
    call_started_at: datetime | None
    cdr_id: str
    sip_call_id: str
    detail: str = ""
    day: date | None = None  # the call's local date in the source's zone

    def line(self) -> str:
        """The table line: kind, call time, ids, detail, on one line whatever the ids hold."""
        started = self.call_started_at.isoformat() if self.call_started_at else "-"
        ids = f"cdr_id={printable(self.cdr_id)} sip_call_id={printable(self.sip_call_id)}"
        text = f"{self.kind.value:<17} {started}  {ids}"
        return f"{text}  {printable(self.detail)}" if self.detail else text


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (a line break as ``\\n``).

    The ids come from the provider: one holding a line break must not be able
    to add a line (a forged ``COMPLETE``) to the report an auditor signs.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


@dataclass(slots=True)
class DayTotals:
    """One local day of the range."""

    day: date
    cdrs: int = 0
    with_recording: int = 0
    archived: int = 0
    missing: int = 0


@dataclass
class Report:
    """The outcome of one reconcile."""

    provider: str
    since: datetime
    until: datetime
    findings: list[Finding]
    days: list[DayTotals]
    bad_manifest_lines: int = 0
    fixed: int = 0
    to_fix: list[CallRecord] = field(default_factory=list, repr=False)

    def count(self, *kinds: Kind) -> int:
        """How many findings are of these kinds."""
        return sum(1 for f in self.findings if f.kind in kinds)

    @property
    def complete(self) -> bool:
        """Every CDR with a recording is archived and every CDR could be read."""
        return not any(f.kind in OPEN_KINDS for f in self.findings)

    def totals(self) -> dict[str, int]:
        """The range's totals (the audit record's details)."""
        return {
            "cdrs": sum(d.cdrs for d in self.days),
            "with_recording": sum(d.with_recording for d in self.days),
            "archived": sum(d.archived for d in self.days),
            "missing": sum(d.missing for d in self.days),
            "failed": self.count(Kind.FAILED),
            "fixed": self.count(Kind.FIXED),
            "unknown_at_source": self.count(Kind.UNKNOWN_AT_SOURCE),
            "unreadable_cdrs": self.count(Kind.UNREADABLE),
            "unreadable_manifest_lines": self.bad_manifest_lines,
        }


@dataclass(slots=True)
class _Listed:
    day: date
    has_recording: bool


class Reconciliation:
    """Compare one provider's listing of [since, until) with the manifest's lines."""

    def __init__(
        self,
        provider: str,
        since: datetime,
        until: datetime,
        tz: tzinfo,
        archived: Mapping[Identity, ArchivedRef],
        bad_manifest_lines: int = 0,
    ) -> None:
        self.provider = provider
        self.since = since
        self.until = until
        self._tz = tz
        self._archived = archived
        self._bad_manifest_lines = bad_manifest_lines
        self._listed: dict[Identity, _Listed] = {}
        self._missing: dict[Identity, CallRecord] = {}
        self._unreadable: list[str] = []

    def add_page(self, records: Iterable[CallRecord], skipped: Iterable[str]) -> None:
        """One page of the listing; a call listed twice counts once."""
        for call in records:
            ident = (call.provider.value, call.cdr_id)
            if ident in self._listed:
                continue
            self._listed[ident] = _Listed(self._day(call.started_at), call.has_recording)
            if call.has_recording and ident not in self._archived:
                self._missing[ident] = call
        self._unreadable.extend(skipped)

    def report(
        self,
        failures: Mapping[Identity, str] | None = None,
        *,
        archived_now: Collection[Identity] = (),
    ) -> Report:
        """Findings and day totals. ``failures``: the state's reasons for failed calls;
        ``archived_now``: the missing calls a --fix has archived since."""
        failures = failures or {}
        days = {d: DayTotals(d) for d in self._days()}
        for ident, listed in self._listed.items():
            totals = days.setdefault(listed.day, DayTotals(listed.day))
            totals.cdrs += 1
            totals.with_recording += listed.has_recording
            if ident in self._archived or ident in archived_now:
                totals.archived += 1
            elif ident in self._missing:
                totals.missing += 1
        findings: list[Finding] = []
        to_fix: list[CallRecord] = []
        for ident, call in self._missing.items():
            if ident in archived_now:
                findings.append(self._finding(Kind.FIXED, call, "archived by --fix"))
            elif ident in failures:
                findings.append(self._finding(Kind.FAILED, call, f"reason: {failures[ident]}"))
            else:
                findings.append(self._finding(Kind.MISSING, call))
                to_fix.append(call)
        for ident, ref in self._archived.items():
            if ident[0] == self.provider and ident not in self._listed:
                findings.append(
                    Finding(
                        Kind.UNKNOWN_AT_SOURCE,
                        ref.started_at,
                        ident[1],
                        ref.sip_call_id,
                        f"(informational: the provider no longer lists it; {ref.manifest_key})",
                        self._day(ref.started_at) if ref.started_at else None,
                    )
                )
        findings.sort(key=_order)
        findings += [Finding(Kind.UNREADABLE, None, "-", "-", why) for why in self._unreadable]
        return Report(
            provider=self.provider,
            since=self.since,
            until=self.until,
            findings=findings,
            days=sorted(days.values(), key=lambda d: d.day),
            bad_manifest_lines=self._bad_manifest_lines,
            fixed=sum(1 for f in findings if f.kind is Kind.FIXED),
            to_fix=to_fix,
        )

    def _finding(self, kind: Kind, call: CallRecord, detail: str = "") -> Finding:
        day = self._day(call.started_at)
        return Finding(kind, call.started_at, call.cdr_id, call.sip_call_id, detail, day)

    def _day(self, moment: datetime) -> date:
        return moment.astimezone(self._tz).date()

    def _days(self) -> list[date]:
        first = self._day(self.since)
        last = self._day(self.until - timedelta(microseconds=1))
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _order(finding: Finding) -> tuple[str, str, str]:
    started = finding.call_started_at.isoformat() if finding.call_started_at else ""
    return (started, finding.cdr_id, finding.kind.value)


# -- rendering ---------------------------------------------------------------------

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


def to_lines(report: Report) -> list[str]:
    """The table format: one line per finding, per day, the totals and the verdict."""
    lines = [f.line() for f in report.findings]
    for d in report.days:
        counts = " ".join(f"{name}={getattr(d, name)}" for name in _DAY_FIELDS)
        lines.append(f"{'DAY':<17} {d.day.isoformat()}  {counts}")
    totals = " ".join(f"{k}={v}" for k, v in report.totals().items())
    lines.append(f"{'TOTAL':<17} {totals}")
    lines.append(verdict(report))
    return lines


def to_json(report: Report, extra: Mapping[str, Any] | None = None) -> str:
    """One JSON document: the range, the verdict, the totals, the days and the findings."""
    body = {
        **(extra or {}),
        "provider": report.provider,
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "complete": report.complete,
        "totals": report.totals(),
        "days": [{**asdict(d), "day": d.day.isoformat()} for d in report.days],
        "findings": [
            {
                "kind": f.kind.value,
                "call_started_at": f.call_started_at.isoformat() if f.call_started_at else None,
                "cdr_id": f.cdr_id,
                "sip_call_id": f.sip_call_id,
                "detail": f.detail,
            }
            for f in report.findings
        ],
    }
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"


def to_csv(report: Report) -> str:
    """One CSV table: a row per finding (record = its kind), then a DAY row per day."""
    out = io.StringIO()
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
    return out.getvalue()


def _day_counts(d: DayTotals) -> list[int]:
    return [getattr(d, name) for name in _DAY_FIELDS]


def _cells(values: Sequence[str]) -> list[str]:
    # The ids and reasons come from the provider: a spreadsheet must not run one
    # as a formula (CSV injection).
    return ["'" + v if v[:1] in ("=", "+", "-", "@") and v != "-" else v for v in values]
