"""The state's outage rider (archiver/state/outage.py): what is tried again, for how
long, and how a write of unknown outcome is resolved. Pure logic: the operations
are functions of the test; the bound is short and real."""

from __future__ import annotations

import pytest

from archiver.errors import StateUnavailableError
from archiver.state.outage import Availability


class Away(Exception):
    """The database is away (what ``transient`` recognises)."""


def transient(exc: BaseException) -> str | None:
    return f"away: {exc}" if isinstance(exc, Away) else None


class Flaky:
    """An operation failing ``failures`` times with Away, then returning ``result``."""

    def __init__(self, failures: int, result: object = "done") -> None:
        self.failures = failures
        self.result = result
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise Away(f"attempt {self.calls}")
        return self.result


async def test_an_operation_is_tried_again_until_the_database_answers() -> None:
    availability = Availability("db", bound=30)
    op = Flaky(3)
    assert await availability.ride(op, transient=transient) == "done"
    assert op.calls == 4
    assert availability.available
    assert availability.down_for() == 0


async def test_another_error_is_raised_at_once() -> None:
    availability = Availability("db", bound=30)
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("no job with id 7")

    with pytest.raises(KeyError):
        await availability.ride(broken, transient=transient)
    assert calls == 1
    assert availability.available


async def test_past_the_bound_one_line_names_the_setting_and_the_reason() -> None:
    availability = Availability("PostgreSQL database x on h:5432", bound=0.5)
    op = Flaky(10_000)
    with pytest.raises(StateUnavailableError) as caught:
        await availability.ride(op, transient=transient)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("state: PostgreSQL database x on h:5432 unreachable for more")
    assert "ARCHIVER_STATE__OUTAGE" in message
    assert "away: attempt" in message
    assert op.calls >= 2
    assert not availability.available
    assert caught.value.__cause__ is None


async def test_the_bound_counts_from_the_outage_not_from_each_operation() -> None:
    availability = Availability("db", bound=0.5)
    with pytest.raises(StateUnavailableError):
        await availability.ride(Flaky(10_000), transient=transient)
    # Still away: a later operation gets one attempt, not a new bound.
    late = Flaky(10_000)
    with pytest.raises(StateUnavailableError):
        await availability.ride(late, transient=transient)
    assert late.calls == 1
    # The database back: the outage is over.
    assert await availability.ride(Flaky(0, "again"), transient=transient) == "again"
    assert availability.available


async def test_a_write_of_unknown_outcome_is_resolved_before_it_runs_again() -> None:
    availability = Availability("db", bound=30)
    committed: list[str] = []
    runs = 0

    async def write() -> str:
        nonlocal runs
        runs += 1
        committed.append("row")  # the commit happened...
        raise Away("connection lost before the answer")  # ...but its answer was lost

    async def resolve() -> str | None:
        return "found it" if committed else None

    assert await availability.ride(write, transient=transient, resolve=resolve) == "found it"
    assert runs == 1
    assert committed == ["row"]


async def test_a_write_that_did_not_commit_runs_again() -> None:
    availability = Availability("db", bound=30)
    op = Flaky(2, "written")
    resolved = 0

    async def resolve() -> str | None:
        nonlocal resolved
        resolved += 1
        return None

    assert await availability.ride(op, transient=transient, resolve=resolve) == "written"
    assert (op.calls, resolved) == (3, 2)
