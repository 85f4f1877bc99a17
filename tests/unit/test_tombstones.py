"""Tombstone records (pure): their line, their key, every shape of bad line."""

import json

import pytest

from archiver.manifest.tombstone import (
    Tombstone,
    parse_tombstone_key,
    parse_tombstones,
    tombstone_key,
)

STONE = Tombstone(
    provider="cdr_v2",
    cdr_id="c1",
    sip_call_id="s1",
    object_key="recordings/2021/02/17/s1.wav",
    sha256="a" * 64,
    size=10,
    manifest="manifests/date=2021-02-17/000000000001-w.jsonl",
    line=3,
    rule="one-year",
    reason="retention",
    approved_by="Officer A",
    disposed_at="2026-12-04T21:00:00Z",
    versions=("v1", "v2"),
)


def test_a_tombstone_round_trips_and_keeps_its_object():
    [back], bad = parse_tombstones("k", (STONE.to_line() + "\n").encode())
    assert bad == []
    assert back == STONE
    assert back.record_key == "k"
    assert back.disposed_day == "2026-12-04"


def test_keys():
    key = tombstone_key("dispose-ab12", 7)
    assert key == "_archiver/tombstones/000000000007-dispose-ab12.jsonl"
    assert parse_tombstone_key(key) == ("dispose-ab12", 7)
    for other in [
        "_archiver/tombstones/x.jsonl",
        "manifests/x.jsonl",
        "_archiver/tombstones/1-.jsonl",
    ]:
        assert parse_tombstone_key(other) is None


def _with(**changes):
    body = json.loads(STONE.to_line()) | changes
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a tombstone"),
        (_with(record="supersede"), "not a tombstone"),
        (_with(reason="because"), "reason"),
        (_with(sha256="abc"), "sha256"),
        (_with(size=-1), "size"),
        (_with(size=True), "size"),
        (_with(line=0), "line"),
        (_with(rule=...), "rule"),
        (_with(approved_by=""), "approved_by"),
        (_with(versions="v1"), "versions"),
        (_with(versions=[1]), "versions"),
        (b"\xff\xfe", "not"),
    ],
)
def test_bad_lines_are_named_and_skipped(line, reason):
    found, bad = parse_tombstones("k", line + b"\n" + STONE.to_line().encode())
    assert found == [STONE]
    assert len(bad) == 1
    assert bad[0].startswith("k line 1: ")
    assert reason in bad[0]


def test_the_table_of_tombstones_answers_as_a_dict_would():
    """verify keeps the tombstones in its scratch file: the same answers as the dict it was."""
    import sqlite3
    from dataclasses import replace

    from archiver.retrieval.tombstones import StoneTable

    table = StoneTable(sqlite3.connect(":memory:"))
    other = replace(STONE, cdr_id="c2", object_key="recordings/b.wav", record_key="r2")
    again = replace(STONE, rule="another", record_key="r3")  # the same recording: first stands
    expected = {}
    for stone in (replace(STONE, record_key="r1"), other, again):
        table.keep(stone)
        expected.setdefault((stone.object_key, stone.sha256), stone)
    assert dict(table) == expected
    assert len(table) == 2
    assert list(table) == sorted(expected)
    assert table[(STONE.object_key, STONE.sha256)].rule == "one-year"
    assert table[(STONE.object_key, STONE.sha256)].record_key == "r1"
    assert table.get((STONE.object_key, "b" * 64)) is None
    assert sorted(s.cdr_id for s in table.values()) == ["c1", "c2"]
    assert table.of_call("cdr_v2", "c2") == other
    assert table.of_call("cdr_v2", "c3") is None
