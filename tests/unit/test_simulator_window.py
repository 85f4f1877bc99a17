"""The simulator's calls one at a time (``iter_calls``) and of a window only: the very
calls and order of the whole world, so a bench serving one month of five years lists what
a simulator of the whole span lists for that month."""

from __future__ import annotations

from datetime import timedelta

from archiver.simulator import SimConfig, Simulator
from archiver.simulator.calls import initial_calls, iter_calls

# A short span: many calls share a second, so the tie order (by CDR id) is exercised.
CONFIG = SimConfig(seed=11, calls=2_000, span=timedelta(minutes=10))


def test_iterated_calls_are_the_initial_calls_in_order() -> None:
    assert list(iter_calls(CONFIG)) == initial_calls(CONFIG)


def test_a_window_holds_exactly_the_calls_started_in_it() -> None:
    everything = initial_calls(CONFIG)
    start = everything[0].started_at
    for since, until in [
        (start + timedelta(seconds=61), start + timedelta(seconds=62)),  # one second
        (start + timedelta(minutes=3), start + timedelta(minutes=7, seconds=30)),
        (start - timedelta(days=1), start + timedelta(seconds=1)),  # before the span
        (start + timedelta(minutes=9), start + timedelta(days=1)),  # past its end
    ]:
        expected = [c for c in everything if since <= c.started_at < until]
        assert list(iter_calls(CONFIG, since, until)) == expected
        window = Simulator(CONFIG, window=(since, until))
        assert window.calls == expected
        assert window.select(since, until) == expected
