"""Completeness: the provider's CDRs of a range against the manifest of the same range.

A :class:`Reconciliation` is fed the archived calls (from the manifest) first,
then the provider's listing page by page; :meth:`Reconciliation.report` says,
per call, what is not accounted for and, per day, how many CDRs, recordings,
archived and missing recordings there were.

A month is some 300,000 CDRs: what the comparison remembers of each is kept in
SQLite tables (the command's scratch file, :mod:`archiver.retrieval.scratch`),
not in Python dicts, so the memory stays flat whatever the range. Calls are
keyed by their full text ids, never by a hash (a collision would turn a
missing call into an archived one); the report is computed by SQL (the day
totals by ``GROUP BY``, what the provider no longer lists by an anti-join)
and its findings are read back in order as they are written out. Text from
the provider or the manifest is stored as UTF-8 bytes (surrogates passed
through): bytes compare as the code points do, so the order is Python's.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta, tzinfo

from archiver.lone_surrogates import from_bytes, to_bytes
from archiver.models import CallRecord, call_from_dict, call_to_dict
from archiver.retrieval.reconcile_render import (
    CSV_COLUMNS,
    iter_lines,
    to_csv,
    to_json,
    to_lines,
    verdict,
    write_csv,
    write_json,
)
from archiver.retrieval.reconcile_report import (
    OPEN_KINDS,
    ArchivedRef,
    DayTotals,
    Finding,
    Identity,
    Kind,
    Report,
    Rows,
    printable,
)

__all__ = [
    "CSV_COLUMNS",
    "OPEN_KINDS",
    "ArchivedRef",
    "DayTotals",
    "Finding",
    "Identity",
    "Kind",
    "Reconciliation",
    "Report",
    "Rows",
    "iter_lines",
    "printable",
    "to_csv",
    "to_json",
    "to_lines",
    "verdict",
    "write_csv",
    "write_json",
]

_KEY = "provider BLOB NOT NULL, cdr_id BLOB NOT NULL"
_SCHEMA = (
    # The manifest's lines of the range: the last line read of a call wins.
    f"CREATE TABLE rc_archived ({_KEY}, sip BLOB, started TEXT NOT NULL, manifest BLOB, "
    "day TEXT, PRIMARY KEY (provider, cdr_id)) WITHOUT ROWID",
    # The provider's listing: a call listed twice counts once.
    f"CREATE TABLE rc_listed ({_KEY}, day TEXT NOT NULL, has_recording INTEGER NOT NULL, "
    "PRIMARY KEY (provider, cdr_id)) WITHOUT ROWID",
    # Listed, with a recording, not archived: seq is the listing order (--fix's).
    f"CREATE TABLE rc_missing (seq INTEGER PRIMARY KEY, {_KEY}, sip BLOB, "
    "started TEXT NOT NULL, day TEXT NOT NULL, record TEXT, UNIQUE (provider, cdr_id))",
    "CREATE TABLE rc_unreadable (seq INTEGER PRIMARY KEY, why BLOB NOT NULL)",
    # One report's inputs: the state's failures, the calls archived since.
    f"CREATE TABLE rc_failures ({_KEY}, reason BLOB, PRIMARY KEY (provider, cdr_id)) WITHOUT ROWID",
    f"CREATE TABLE rc_marked ({_KEY}, PRIMARY KEY (provider, cdr_id)) WITHOUT ROWID",
    f"CREATE TABLE rc_now ({_KEY}, PRIMARY KEY (provider, cdr_id)) WITHOUT ROWID",
    # Each report's findings, kept (a report is read after the next is made).
    "CREATE TABLE rc_findings (report INTEGER NOT NULL, kind TEXT NOT NULL, "
    "started TEXT NOT NULL, cdr_id BLOB NOT NULL, sip BLOB, extra BLOB, day TEXT, seq INTEGER)",
    "CREATE INDEX rc_findings_order ON rc_findings (report, started, cdr_id, kind, seq)",
)
_DETAIL = {
    Kind.MISSING: "",
    Kind.FIXED: "archived by --fix",
}


def _key(ident: Identity) -> tuple[bytes, bytes]:
    return to_bytes(ident[0]), to_bytes(ident[1])


class Reconciliation:
    """Compare one provider's listing of [since, until) with the manifest's lines.

    ``db``: an empty SQLite connection of its own (the command's scratch file);
    None: one in memory (tests, small ranges). ``keep_records``: keep each
    missing call's whole record (for ``--fix``); without, only what the report
    shows (the recording URL is then never written to the scratch file).
    """

    def __init__(
        self,
        provider: str,
        since: datetime,
        until: datetime,
        tz: tzinfo,
        archived: Mapping[Identity, ArchivedRef] | None = None,
        bad_manifest_lines: int = 0,
        *,
        db: sqlite3.Connection | None = None,
        keep_records: bool = True,
    ) -> None:
        self.provider = provider
        self.since = since
        self.until = until
        self._tz = tz
        self.bad_manifest_lines = bad_manifest_lines
        self._keep_records = keep_records
        self._db = db if db is not None else sqlite3.connect(":memory:")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._reports = 0
        if archived:
            self.add_archived(archived.items())

    def add_archived(self, lines: Iterable[tuple[Identity, ArchivedRef]]) -> None:
        """Manifest lines of the range (before the listing); a call's last line wins."""
        self._db.executemany(
            "INSERT OR REPLACE INTO rc_archived VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    *_key(ident),
                    to_bytes(ref.sip_call_id),
                    ref.started_at.isoformat() if ref.started_at else "",
                    None if ref.manifest_key is None else to_bytes(ref.manifest_key),
                    self._day(ref.started_at).isoformat() if ref.started_at else None,
                )
                for ident, ref in lines
            ),
        )

    def add_page(self, records: Iterable[CallRecord], skipped: Iterable[str]) -> None:
        """One page of the listing; a call listed twice counts once."""
        db = self._db
        for call in records:
            key = _key((call.provider.value, call.cdr_id))
            day = self._day(call.started_at).isoformat()
            listed = db.execute(
                "INSERT OR IGNORE INTO rc_listed VALUES (?, ?, ?, ?)",
                (*key, day, int(call.has_recording)),
            )
            if listed.rowcount == 0 or not call.has_recording:
                continue
            archived = db.execute(
                "SELECT 1 FROM rc_archived WHERE provider = ? AND cdr_id = ?", key
            ).fetchone()
            if archived is None:
                db.execute(
                    "INSERT INTO rc_missing (provider, cdr_id, sip, started, day, record) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (*key, to_bytes(call.sip_call_id), call.started_at.isoformat(), day,
                     self._record(call)),
                )  # fmt: skip
        db.executemany(
            "INSERT INTO rc_unreadable (why) VALUES (?)", ((to_bytes(w),) for w in skipped)
        )

    def mark_fixed(self, among: Report, idents: Iterable[Identity]) -> None:
        """Of ``idents`` (calls found archived after a --fix), those ``among`` had to
        fix: every later report counts them FIXED (archived)."""
        if not isinstance(among.findings, _Findings) or among.findings.owner is not self:
            raise ValueError("not a report of this reconciliation")
        number = among.findings.report
        self._db.executemany(
            "INSERT OR IGNORE INTO rc_marked SELECT m.provider, m.cdr_id FROM rc_missing m "
            "JOIN rc_findings f ON f.seq = m.seq AND f.report = ? AND f.kind = ? "
            "WHERE m.provider = ? AND m.cdr_id = ?",
            ((number, Kind.MISSING.value, *_key(ident)) for ident in idents),
        )

    def disposed(self, gone: Iterable[Identity]) -> int:
        """How many of ``gone`` (disposed calls) are archived in the range (or fixed)."""
        db = self._db
        db.execute(
            f"CREATE TABLE IF NOT EXISTS rc_gone ({_KEY}, PRIMARY KEY (provider, cdr_id)) "
            "WITHOUT ROWID"
        )
        db.execute("DELETE FROM rc_gone")
        db.executemany("INSERT OR IGNORE INTO rc_gone VALUES (?, ?)", (_key(i) for i in gone))
        row = db.execute(
            "SELECT count(*) FROM rc_gone g WHERE EXISTS (SELECT 1 FROM rc_archived a "
            "WHERE a.provider = g.provider AND a.cdr_id = g.cdr_id) OR EXISTS (SELECT 1 "
            "FROM rc_marked m WHERE m.provider = g.provider AND m.cdr_id = g.cdr_id)"
        ).fetchone()
        return int(row[0])

    def report(
        self,
        failures: Mapping[Identity, str] | None = None,
        *,
        archived_now: Collection[Identity] = (),
    ) -> Report:
        """Findings and day totals. ``failures``: the state's reasons for failed calls;
        ``archived_now``: the missing calls a --fix has archived since (with those
        :meth:`mark_fixed` was told of)."""
        db = self._db
        self._reports += 1
        number = self._reports
        db.execute("DELETE FROM rc_failures")
        db.executemany(
            "INSERT OR REPLACE INTO rc_failures VALUES (?, ?, ?)",
            ((*_key(ident), to_bytes(why)) for ident, why in (failures or {}).items()),
        )
        db.execute("DELETE FROM rc_now")
        db.execute("INSERT INTO rc_now SELECT * FROM rc_marked")
        db.executemany("INSERT OR IGNORE INTO rc_now VALUES (?, ?)", map(_key, archived_now))
        days = self._day_totals()
        db.execute(
            "INSERT INTO rc_findings SELECT ?, CASE WHEN n.cdr_id IS NOT NULL THEN ? "
            "WHEN f.cdr_id IS NOT NULL THEN ? ELSE ? END, m.started, m.cdr_id, m.sip, "
            "f.reason, m.day, m.seq FROM rc_missing m "
            "LEFT JOIN rc_now n ON n.provider = m.provider AND n.cdr_id = m.cdr_id "
            "LEFT JOIN rc_failures f ON f.provider = m.provider AND f.cdr_id = m.cdr_id",
            (number, Kind.FIXED.value, Kind.FAILED.value, Kind.MISSING.value),
        )
        db.execute(
            "INSERT INTO rc_findings SELECT ?, ?, a.started, a.cdr_id, a.sip, a.manifest, "
            "a.day, NULL FROM rc_archived a WHERE a.provider = ? AND NOT EXISTS (SELECT 1 "
            "FROM rc_listed l WHERE l.provider = a.provider AND l.cdr_id = a.cdr_id)",
            (number, Kind.UNKNOWN_AT_SOURCE.value, to_bytes(self.provider)),
        )
        counts = {
            Kind(kind): int(n)
            for kind, n in db.execute(
                "SELECT kind, count(*) FROM rc_findings WHERE report = ? GROUP BY kind", (number,)
            )
        }
        unreadable, last = db.execute(
            "SELECT count(*), coalesce(max(seq), 0) FROM rc_unreadable"
        ).fetchone()
        if unreadable:
            counts[Kind.UNREADABLE] = int(unreadable)
        findings = _Findings(
            lambda: self._findings(number, int(last)), sum(counts.values()), self, number
        )
        to_fix: Rows[CallRecord] = Rows(lambda: self._to_fix(number), counts.get(Kind.MISSING, 0))
        return Report(
            provider=self.provider,
            since=self.since,
            until=self.until,
            findings=findings,
            days=days,
            bad_manifest_lines=self.bad_manifest_lines,
            fixed=counts.get(Kind.FIXED, 0),
            to_fix=to_fix,
            counts=counts,
        )

    def _day_totals(self) -> list[DayTotals]:
        days = {d: DayTotals(d) for d in self._days()}
        rows = self._db.execute(
            "SELECT l.day, count(*), sum(l.has_recording), "
            "sum(a.cdr_id IS NOT NULL OR n.cdr_id IS NOT NULL), "
            "sum(a.cdr_id IS NULL AND n.cdr_id IS NULL AND m.cdr_id IS NOT NULL) "
            "FROM rc_listed l "
            "LEFT JOIN rc_archived a ON a.provider = l.provider AND a.cdr_id = l.cdr_id "
            "LEFT JOIN rc_now n ON n.provider = l.provider AND n.cdr_id = l.cdr_id "
            "LEFT JOIN rc_missing m ON m.provider = l.provider AND m.cdr_id = l.cdr_id "
            "GROUP BY l.day"
        )
        for day_text, cdrs, recordings, archived, missing in rows:
            day = date.fromisoformat(day_text)
            days[day] = DayTotals(day, int(cdrs), int(recordings), int(archived), int(missing))
        return sorted(days.values(), key=lambda d: d.day)

    def _findings(self, number: int, last_unreadable: int) -> Iterator[Finding]:
        rows = self._db.execute(
            "SELECT kind, started, cdr_id, sip, extra, day FROM rc_findings WHERE report = ? "
            "ORDER BY started, cdr_id, kind, seq",
            (number,),
        )
        for kind_text, started, cdr_id, sip, extra, day in rows:
            kind = Kind(kind_text)
            if kind is Kind.FAILED:
                detail = f"reason: {from_bytes(extra)}"
            elif kind is Kind.UNKNOWN_AT_SOURCE:
                manifest = None if extra is None else from_bytes(extra)
                detail = f"(informational: the provider no longer lists it; {manifest})"
            else:
                detail = _DETAIL[kind]
            yield Finding(
                kind,
                datetime.fromisoformat(started) if started else None,
                from_bytes(cdr_id),
                from_bytes(sip),
                detail,
                date.fromisoformat(day) if day else None,
            )
        unreadable = self._db.execute(
            "SELECT why FROM rc_unreadable WHERE seq <= ? ORDER BY seq", (last_unreadable,)
        )
        for (why,) in unreadable:
            yield Finding(Kind.UNREADABLE, None, "-", "-", from_bytes(why))

    def _to_fix(self, number: int) -> Iterator[CallRecord]:
        rows = self._db.execute(
            "SELECT m.record FROM rc_findings f JOIN rc_missing m ON m.seq = f.seq "
            "WHERE f.report = ? AND f.kind = ? ORDER BY f.seq",
            (number, Kind.MISSING.value),
        )
        for (record,) in rows:
            if record is None:
                raise ValueError("this reconciliation kept no records: it cannot fix")
            yield call_from_dict(json.loads(record))

    def _record(self, call: CallRecord) -> str | None:
        if not self._keep_records:
            return None
        # The provider's raw payload is not needed to archive the call (the state
        # does not keep it either); ASCII JSON keeps any lone surrogate of an id.
        record = call_to_dict(dataclasses.replace(call, raw={}))
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"))

    def _day(self, moment: datetime) -> date:
        return moment.astimezone(self._tz).date()

    def _days(self) -> list[date]:
        first = self._day(self.since)
        last = self._day(self.until - timedelta(microseconds=1))
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


class _Findings(Rows[Finding]):
    """A report's findings; ``report`` says which report of its reconciliation."""

    def __init__(
        self,
        read: Callable[[], Iterator[Finding]],
        length: int,
        owner: Reconciliation,
        report: int,
    ) -> None:
        super().__init__(read, length)
        self.owner = owner
        self.report = report
