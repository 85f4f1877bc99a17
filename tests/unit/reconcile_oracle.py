"""The reconcile's comparison as it was before its scratch tables (main ``1083326``): all
in Python dicts. Kept only as the oracle of tests/unit/test_reconcile_sqlite.py."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from archiver.models import CallRecord
from archiver.retrieval.reconcile_report import (
    ArchivedRef,
    DayTotals,
    Finding,
    Identity,
    Kind,
    Report,
)


@dataclass(slots=True)
class _Listed:
    day: date
    has_recording: bool


class OldReconciliation:
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


def old_to_json(report: Report, extra: Mapping[str, Any] | None = None) -> str:
    """The JSON document as the old code wrote it (one ``json.dumps``)."""
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
