"""The lag warning: past the threshold, one line naming what the run waits for; again
at once when the cause changes, else at most once a minute; a line when back under."""

from __future__ import annotations

import logging

import pytest

from archiver.lag import WARN_EVERY, LagWatch, Waiting


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_under_the_threshold_nothing_is_said_nor_asked():
    watch = LagWatch(300, monotonic=Clock())

    def never() -> Waiting:
        raise AssertionError("asked what the run waits for while the lag is fine")

    assert watch.check(299.9, never) is None
    assert watch.check(300, never) is None


def test_past_the_threshold_it_warns_once_a_minute_and_names_the_cause(caplog):
    clock = Clock()
    watch = LagWatch(300, monotonic=clock)
    storage = Waiting(storage_error="s3://b: no answer within 5s")
    with caplog.at_level(logging.WARNING, logger="archiver.service"):
        line = watch.check(412, lambda: storage)
        assert line is not None
        assert line.startswith(
            "lag 412s is past ARCHIVER_LAG_WARNING (300s): waiting for the storage"
        )
        assert "no answer within 5s" in line
        clock.now += WARN_EVERY - 1
        assert watch.check(470, lambda: storage) is None
        clock.now += 1
        assert watch.check(475, lambda: storage) is not None
    assert len([r for r in caplog.records if "ARCHIVER_LAG_WARNING" in r.message]) == 2


def test_a_new_cause_is_said_at_once():
    clock = Clock()
    watch = LagWatch(300, monotonic=clock)
    assert watch.check(400, lambda: Waiting(storage_error="down")) is not None
    clock.now += 1
    line = watch.check(401, lambda: Waiting(state_error="database is locked"))
    assert line is not None
    assert "waiting for the state database (database is locked)" in line


def test_back_under_is_said_once_and_the_next_pass_warns_again(caplog):
    clock = Clock()
    watch = LagWatch(10, monotonic=clock)
    busy = Waiting(in_flight=3, queued=40)
    assert watch.check(11, lambda: busy) is not None
    with caplog.at_level(logging.INFO, logger="archiver.service"):
        watch.check(2, lambda: busy)
        watch.check(1, lambda: busy)
    assert [r.message for r in caplog.records].count(
        "lag back under ARCHIVER_LAG_WARNING (10s): 2s"
    ) == 1
    clock.now += 1
    assert watch.check(12, lambda: busy) is not None


@pytest.mark.parametrize(
    ("waiting", "cause", "words"),
    [
        (Waiting(storage_error="x", state_error="y"), "storage", "waiting for the storage"),
        (Waiting(state_error="y", source_silent_for=500), "state", "state database"),
        (Waiting(source_silent_for=500), "provider", "no listing completed for 500s"),
        (
            Waiting(near_deadline=2, oldest_transfer=1500, in_flight=2),
            "deadline",
            "near their deadline",
        ),
        (Waiting(in_flight=16, queued=900), "busy", "ARCHIVER_CONCURRENCY"),
        (Waiting(not_ready=7), "not_ready", "make 7 recording(s) available"),
        (Waiting(), "retries", "retries are not due yet"),
    ],
)
def test_the_first_cause_that_holds_is_named(waiting, cause, words):
    assert waiting.cause == cause
    assert words in waiting.reason()
