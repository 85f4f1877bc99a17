"""The polls' remembered counts per step of call start time (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from archiver.pipeline.poll_counts import Tally

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_leaves_are_cut_at_the_same_edges_whatever_the_zone() -> None:
    tally = Tally(MINUTE)
    leaf = tally.leaf(T0 + timedelta(seconds=59))
    assert tally.leaf(T0) == leaf
    assert tally.leaf(T0 + MINUTE) == leaf + 1
    assert tally.start_of(leaf) == T0
    assert tally.leaf(T0.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))) == leaf


def test_a_leaf_never_listed_counts_as_zero() -> None:
    tally = Tally(MINUTE)
    lo = tally.leaf(T0)
    assert tally.remembered(lo, lo + 2) == 0
    tally.remember(lo, 3)
    assert tally.remembered(lo, lo + 1) == 3
    assert tally.remembered(lo, lo + 2) == 3


@pytest.mark.parametrize(
    ("offsets", "count", "kept"),
    [
        ([0, 30, 61, 179], 4, True),  # they add up: each leaf is known
        ([0, 30, 61], 4, False),  # one the API counts was not listed (or came in between)
        ([0, 30, 61, 200], 4, False),  # a start outside the range cannot be placed
        ([], 0, True),  # an empty range is three known zeros
    ],
)
def test_attribution_only_when_the_listing_adds_up(
    offsets: list[int], count: int, kept: bool
) -> None:
    tally = Tally(MINUTE)
    lo = tally.leaf(T0)
    starts = [T0 + timedelta(seconds=s) for s in offsets]
    assert tally.attribute(lo, lo + 3, starts, count) is kept
    assert tally.remembered(lo, lo + 3) == (count if kept else 0)


def test_forgetting() -> None:
    tally = Tally(MINUTE)
    lo = tally.leaf(T0)
    for leaf in range(lo, lo + 5):
        tally.remember(leaf, 1)
    tally.forget_before(lo + 2)
    tally.forget(lo + 4, lo + 5)
    assert len(tally) == 2
    assert tally.remembered(lo + 2, lo + 4) == 2


def test_a_step_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Tally(timedelta(0))
