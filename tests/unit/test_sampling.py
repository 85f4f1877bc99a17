"""verify --sample's arithmetic (pure): which lines a seeded sample takes, and the
confidence a sample gives (one-sided Clopper-Pearson upper bounds)."""

from __future__ import annotations

import random

import pytest

from archiver.errors import UsageError
from archiver.manifest.entry import ManifestEntry
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.sampling import Sample, upper_bound


def _line(n: int) -> ManifestEntry:
    return ManifestEntry(
        f"s{n}", f"c{n}", "cdr_v2", f"rec/{n}.wav", "0" * 64, 1, None, None, None, {}
    )


@pytest.mark.parametrize(
    ("n", "bad", "expected"),
    [
        (300, 0, 0.009937),  # 1 - 0.05 ** (1 / 300): the "rule of three" (3/n) nearly
        (100, 1, 0.04656),  # the one-sided 95% Clopper-Pearson bound of 1 in 100
        (20, 5, 0.4556),
        (1_000_000, 0, 2.9957e-6),
    ],
)
def test_upper_bound_is_clopper_pearson(n: int, bad: int, expected: float) -> None:
    assert upper_bound(n, bad) == pytest.approx(expected, rel=1e-3)


def test_upper_bound_edges() -> None:
    assert upper_bound(0, 0) == 1.0
    assert upper_bound(10, 10) == 1.0
    assert upper_bound(50, 0) < upper_bound(50, 1) < upper_bound(50, 2)


def test_a_count_sample_is_the_same_whatever_the_order_of_the_lines() -> None:
    lines = [_line(n) for n in range(2000)]
    picks = []
    for order in range(3):
        sample = Sample.parse("50", "seed")
        shuffled = lines[:]
        random.Random(order).shuffle(shuffled)
        for line in shuffled:
            assert sample.offer(line) == []
        picks.append(sorted(c.object_key for c in sample.rest()))
    assert len(picks[0]) == 50
    assert picks[0] == picks[1] == picks[2]
    other = Sample.parse("50", "another seed")
    for line in lines:
        other.offer(line)
    assert sorted(c.object_key for c in other.rest()) != picks[0]


def test_a_share_takes_about_that_share_and_counts_the_bad_it_took() -> None:
    sample = Sample.parse("10%", "s")
    taken = [line for n in range(10_000) for line in sample.offer(_line(n))]
    assert 850 < len(taken) < 1150
    assert all(sample.chosen_key(c.object_key) for c in taken)
    left_out = next(_line(n) for n in range(10_000) if not sample.chosen_key(f"rec/{n}.wav"))
    problems = [
        Problem(ProblemKind.CORRUPT, taken[0].object_key, "x", taken[0]),
        Problem(ProblemKind.MISSING, taken[0].object_key, "y", taken[0]),  # the same object
        Problem(ProblemKind.DUPLICATE, taken[1].object_key, "a second line", taken[1]),
        Problem(ProblemKind.CORRUPT, left_out.object_key, "not sampled", left_out),
    ]
    assert sample.bad(problems) == 1


@pytest.mark.parametrize("spec", ["", "0", "0%", "100.5%", "x", "1e3", "5 %", "-1", "1000001"])
def test_bad_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        Sample.parse(spec, "s")
