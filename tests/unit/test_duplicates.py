"""Duplicate call lines and supersede records, as pure rules: which line stands, which record
counts, what a record that names anything else does (nothing)."""

from __future__ import annotations

import json

import pytest

from archiver.manifest.entry import ManifestEntry
from archiver.manifest.supersede import Supersession, parse_record_key, parse_records, record_key
from archiver.retrieval.duplicates import CallLines, Line, plan_dedupe
from archiver.retrieval.problems import ProblemKind

A = "manifests/date=2021-02-17/000000000001-wa.jsonl"
B = "manifests/date=2021-02-17/000000000001-wb.jsonl"


def entry(cdr: str, archived_at: str = "2021-02-18T00:00:00Z", provider: str = "cdr_v2"):
    return ManifestEntry.from_line(
        {
            "sip_call_id": f"sip-{cdr}",
            "cdr_id": cdr,
            "provider": provider,
            "object_key": f"recordings/{cdr}.mp3",
            "sha256": "0" * 64,
            "size": 1,
            "archived_at": archived_at,
        }
    )


def test_a_second_line_of_a_call_is_a_duplicate_naming_both_lines() -> None:
    lines = CallLines()
    lines.add(entry("1"), (A, 1))
    lines.add(entry("2"), (A, 2))
    lines.add(entry("1"), (B, 5))
    problems, superseded = lines.duplicates([], whole=True)
    assert superseded == 0
    [problem] = problems
    assert problem.kind is ProblemKind.DUPLICATE
    assert problem.where == f"{B} line 5"
    assert f"the first is {A} line 1" in problem.detail


def test_the_same_cdr_id_of_two_providers_is_two_calls() -> None:
    lines = CallLines()
    lines.add(entry("1"), (A, 1))
    lines.add(entry("1", provider="epacific"), (B, 1))
    assert lines.duplicates([], whole=True) == ([], 0)


def test_a_record_naming_both_lines_supersedes_the_second() -> None:
    lines = CallLines()
    lines.add(entry("1"), (A, 1))
    lines.add(entry("1"), (B, 5))
    record = Supersession("cdr_v2", "1", "sip-1", (A, 1), (B, 5))
    assert lines.duplicates([record], whole=True) == ([], 1)


@pytest.mark.parametrize(
    "record",
    [
        Supersession("cdr_v2", "1", "sip-1", (A, 1), (B, 6)),  # not the duplicate's line
        Supersession("cdr_v2", "2", "sip-2", (A, 1), (B, 5)),  # another call
        Supersession("epacific", "1", "sip-1", (A, 1), (B, 5)),  # another provider
        Supersession("cdr_v2", "1", "sip-1", (B, 5), (B, 5)),  # a line superseding itself
    ],
)
def test_a_record_naming_anything_else_supersedes_nothing(record: Supersession) -> None:
    lines = CallLines()
    lines.add(entry("1"), (A, 1))
    lines.add(entry("1"), (B, 5))
    problems, superseded = lines.duplicates([record], whole=True)
    assert superseded == 0
    assert sorted(p.kind for p in problems) == [ProblemKind.DUPLICATE, ProblemKind.SUPERSEDE]
    # Over a range only, a record may name lines outside it: no SUPERSEDE problem then.
    partial, _ = lines.duplicates([record], whole=False)
    assert [p.kind for p in partial] == [ProblemKind.DUPLICATE]


def test_records_superseding_every_line_leave_the_first_standing() -> None:
    lines = CallLines()
    lines.add(entry("1"), (A, 1))
    lines.add(entry("1"), (B, 5))
    cycle = [
        Supersession("cdr_v2", "1", "s", (A, 1), (B, 5)),
        Supersession("cdr_v2", "1", "s", (B, 5), (A, 1)),
    ]
    problems, _ = lines.duplicates(cycle, whole=True)
    assert problems == []


def test_dedupe_keeps_the_earliest_archived_line() -> None:
    held = {
        ("cdr_v2", "1"): [
            Line.of(entry("1", "2021-02-19T00:00:00Z"), (A, 3)),
            Line.of(entry("1", "2021-02-18T00:00:00Z"), (B, 9)),
            Line.of(entry("1", "2021-02-20T00:00:00Z"), (B, 1)),
        ]
    }
    planned = plan_dedupe(held, {})
    assert {(r.kept, r.superseded) for r in planned} == {((B, 9), (A, 3)), ((B, 9), (B, 1))}


def test_dedupe_leaves_alone_what_records_already_set_aside() -> None:
    held = {("cdr_v2", "1"): [Line.of(entry("1"), (A, 1)), Line.of(entry("1"), (B, 1))]}
    done = {(B, 1): Supersession("cdr_v2", "1", "s", (A, 1), (B, 1))}
    assert plan_dedupe(held, done) == []


def test_a_line_without_archived_at_is_kept_last() -> None:
    undated = entry("1")
    undated = ManifestEntry.from_line({**undated.fields, "archived_at": "garbage"})
    held = {("cdr_v2", "1"): [Line.of(undated, (A, 1)), Line.of(entry("1"), (B, 1))]}
    [record] = plan_dedupe(held, {})
    assert record.kept == (B, 1)


def test_records_round_trip_and_bad_ones_are_named() -> None:
    record = Supersession("cdr_v2", "1", "sip-1", (A, 1), (B, 5), recorded_at="t")
    key = record_key("dedupe-abc", 3)
    assert parse_record_key(key) == ("dedupe-abc", 3)
    assert parse_record_key("_archiver/supersede/x-y.jsonl") is None
    hostile = [
        b"not json",
        json.dumps({"record": "other"}).encode(),
        json.dumps({**json.loads(record.to_line()), "kept_line": 0}).encode(),
        json.dumps({**json.loads(record.to_line()), "kept_line": True}).encode(),
        json.dumps({**json.loads(record.to_line()), "cdr_id": ""}).encode(),
        json.dumps({**json.loads(record.to_line()), "provider": 7}).encode(),
    ]
    content = b"\n".join([record.to_line().encode(), *hostile, b""])
    found, bad = parse_records(key, content)
    assert [(r.kept, r.superseded, r.record_key) for r in found] == [((A, 1), (B, 5), key)]
    assert len(bad) == len(hostile)
    assert all(reason.startswith(f"{key} line ") for reason in bad)
