"""Which audit records ``archiver audit`` and the console list, and from which prefixes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from archiver.console.auditlog import audit_where
from archiver.retrieval.audit import AuditQuery

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
RECORD = {"at": "2026-11-23T10:00:00.5Z", "operator": "Alice", "action": "get", "result": "ok"}


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        (AuditQuery(), True),
        (AuditQuery(action="get"), True),
        (AuditQuery(action="search"), False),
        (AuditQuery(operator=" ALICE "), True),
        (AuditQuery(operator="bob"), False),
        (AuditQuery(result="ok"), True),
        (AuditQuery(result="refused"), False),
        (AuditQuery(since=datetime(2026, 11, 23, 10, tzinfo=UTC)), True),
        (AuditQuery(since=datetime(2026, 11, 23, 10, 0, 1, tzinfo=UTC)), False),
        (AuditQuery(until=datetime(2026, 11, 23, 10, 0, 0, 500_000, tzinfo=UTC)), False),
        (AuditQuery(until=datetime(2026, 11, 23, 17, 1, tzinfo=HCM)), True),
    ],
)
def test_a_record_matches_every_criterion(query: AuditQuery, matches: bool) -> None:
    assert query.matches(RECORD) is matches


def test_a_record_without_a_time_never_matches() -> None:
    assert not AuditQuery().matches({"at": "yesterday"})


def test_a_short_range_lists_its_utc_days_only() -> None:
    since = datetime(2026, 11, 23, 6, tzinfo=HCM)  # 22 Nov 23:00 UTC
    query = AuditQuery(since=since, until=since + timedelta(days=1))
    assert query.day_prefixes() == [
        "_archiver/audit/2026/11/22/",
        "_archiver/audit/2026/11/23/",
    ]
    midnight = datetime(2026, 11, 23, tzinfo=UTC)
    one_day = AuditQuery(since=midnight, until=midnight + timedelta(days=1))
    assert one_day.day_prefixes() == ["_archiver/audit/2026/11/23/"]


@pytest.mark.parametrize(
    "query",
    [
        AuditQuery(),
        AuditQuery(since=datetime(2026, 1, 1, tzinfo=UTC)),
        AuditQuery(since=datetime(2025, 1, 1, tzinfo=UTC), until=datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_an_open_or_long_range_lists_the_whole_trail(query: AuditQuery) -> None:
    assert query.day_prefixes() == ["_archiver/audit/"]


@pytest.mark.parametrize(
    ("query", "where", "params"),
    [
        (AuditQuery(), "1", []),
        (
            AuditQuery(operator=" alice ", result="ok"),
            "operator = ? AND result = ?",
            ["alice", "ok"],
        ),
        (
            AuditQuery(
                since=datetime(2026, 11, 23, tzinfo=HCM), until=datetime(2026, 11, 24, tzinfo=HCM)
            ),
            "at >= ? AND at < ?",
            ["2026-11-22T17:00:00Z", "2026-11-23T17:00:00Z"],
        ),
    ],
)
def test_the_console_asks_its_index_the_same_criteria(
    query: AuditQuery, where: str, params: list[object]
) -> None:
    assert audit_where(query) == (where, params)
