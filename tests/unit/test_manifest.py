"""The manifest's pure rules: its key layout, one line, the chain's links and heads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from archiver.manifest.chain import Head, Link, next_link, sha256_hex
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord, Provider
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.storage.base import ObjectProof
from archiver.storage.layout import (
    ManifestKey,
    link_key,
    manifest_key,
    parse_chain_key,
    parse_manifest_key,
    partition_date,
    stamp_key,
)
from archiver.storage.protection import is_evidence
from archiver.storage.s3_proof import proof_from

LINE = {
    "sip_call_id": "s1",
    "cdr_id": "c1",
    "provider": "cdr_v2",
    "object_key": "p/recordings/s1.wav",
    "sha256": "ab" * 32,
    "size": 10,
}


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        (
            "manifests/date=2021-02-17/000000000042-w0123456789abcdef.jsonl",
            ManifestKey(date(2021, 2, 17), 42, "w0123456789abcdef"),
        ),
        # Written before the chain: a run id where the writer id now is.
        (
            "manifests/date=2020-12-31/000000000001-20210217T0300Z-ab12.jsonl",
            ManifestKey(date(2020, 12, 31), 1, "20210217T0300Z-ab12"),
        ),
        ("manifests/date=2021-02-30/000000000001-w1.jsonl", None),
        ("manifests/date=2021-2-17/000000000001-w1.jsonl", None),
        ("manifests/date=2021-02-17/x-w1.jsonl", None),
        ("manifests/date=2021-02-17/000000000001-w1.json", None),
        ("manifests/date=2021-02-17/000000000001-../x.jsonl", None),
        ("manifests/date=2021-02-17/000000000001-.jsonl", None),
        ("recordings/2021/02/17/x.wav", None),
    ],
)
def test_manifest_keys_are_parsed_without_guessing(key: str, parsed: ManifestKey | None) -> None:
    assert parse_manifest_key(key) == parsed
    if parsed is not None:
        assert str(parsed) == key


def test_manifest_key_refuses_a_writer_that_is_not_a_token() -> None:
    assert manifest_key("2021-02-17", 7, "w1") == "manifests/date=2021-02-17/000000000007-w1.jsonl"
    for bad in ("", "../x", "a/b", "é", "x" * 65):
        with pytest.raises(ValueError, match="writer id"):
            manifest_key("2021-02-17", 1, bad)


@pytest.mark.parametrize(
    ("key", "day"),
    [
        ("manifests/date=2021-02-17/anything.jsonl", date(2021, 2, 17)),
        ("manifests/date=2021-02-17/a/b.jsonl", None),
        ("manifests/date=2021-02-17/", None),
        ("manifests/date=20210217/a.jsonl", None),
        ("_archiver/ids/aa/x.json", None),
    ],
)
def test_partition_dates(key: str, day: date | None) -> None:
    assert partition_date(key) == day


def test_chain_keys() -> None:
    assert link_key("w1", 3) == "_archiver/chain/w1/000000000003.json"
    assert parse_chain_key("_archiver/chain/w1/000000000003.json") == ("w1", 3)
    assert parse_chain_key("_archiver/chain/w1/head.json") == ("w1", None)
    assert stamp_key("w1", 3) == "_archiver/chain/w1/000000000003.tsr"
    assert parse_chain_key(stamp_key("w1", 3)) is None  # beside the links, not one
    assert parse_chain_key("_archiver/chain/w1/x/000000000003.json") is None
    assert parse_chain_key("_archiver/ids/w1/000000000003.json") is None


def test_links_and_chain_heads_are_evidence_or_not() -> None:
    assert is_evidence("_archiver/chain/w1/000000000003.json")
    # Issue 20: each version of a head is kept locked too (verify reads the head's history).
    assert is_evidence("_archiver/chain/w1/head.json")
    assert not is_evidence("_archiver/ids/aa/x/y.json")
    assert is_evidence("manifests/date=2021-02-17/1-w.jsonl")


def test_a_legacy_line_has_no_proof_and_a_v2_line_has_one() -> None:
    legacy = ManifestEntry.from_line(LINE)
    assert legacy.legacy
    assert legacy.proof is None
    v2 = ManifestEntry.from_line({**LINE, "etag": None, "version_id": None})
    assert not v2.legacy
    assert v2.proof == ObjectProof()
    proven = ManifestEntry.from_line(
        {**LINE, "etag": "e", "version_id": "v", "checksum_sha256": "q83=", "checksum_type": "X"}
    )
    assert proven.proof == ObjectProof("e", "v", "q83=", "X")
    assert proven.proof.proves_bytes


@pytest.mark.parametrize("bad", [1, "", ["e"], {"e": 1}, "x" * 2000])
def test_a_proof_field_that_is_not_a_string_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="etag is not a string"):
        ManifestEntry.from_line({**LINE, "etag": bad})


def test_a_built_line_round_trips_and_records_the_proof() -> None:
    call = CallRecord(
        provider=Provider.CDR_V2,
        cdr_id="c1",
        sip_call_id="s1",
        started_at=datetime(2021, 2, 17, 8, tzinfo=UTC),
        recording_url="https://h/x.wav?sig=SECRET",
    )
    proof = ObjectProof("etag1", "v1", "checksum=", "FULL_OBJECT")
    entry = ManifestEntry.build(
        call,
        object_key="recordings/x.wav",
        sha256="ab" * 32,
        size=3,
        content_type="audio/wav",
        archived_at=datetime(2021, 2, 17, 9, tzinfo=UTC),
        proof=proof,
    )
    line = entry.to_line()
    assert "SECRET" not in line
    assert "\n" not in line
    data = json.loads(line)
    assert (data["etag"], data["version_id"], data["checksum_sha256"]) == (
        "etag1",
        "v1",
        "checksum=",
    )
    again = ManifestEntry.from_line(data, "manifests/date=2021-02-17/1-w.jsonl")
    assert again == entry
    assert again.proof == proof
    assert again.archived_at == datetime(2021, 2, 17, 9, tzinfo=UTC)


def test_proof_differences_name_what_changed() -> None:
    recorded = ObjectProof("e1", "v1", "c1=", "FULL_OBJECT")
    assert recorded.differences(ObjectProof("e1", "v2", "c1=", "FULL_OBJECT")) == []
    assert recorded.differences(ObjectProof("e2", "v1", None, None)) == [
        "etag e2, recorded e1",
        "checksum_sha256 none, recorded c1=",
    ]
    # Nothing recorded (a local file): nothing to differ from.
    assert ObjectProof().differences(ObjectProof("e", None, "c=", "FULL_OBJECT")) == []


def test_proof_comes_from_the_server_answer_never_from_metadata() -> None:
    answer = {
        "ETag": '"0123"',
        "VersionId": "v9",
        "ChecksumSHA256": "abc=-3",
        "Metadata": {"sha256": "ab" * 32},
    }
    assert proof_from(answer) == ObjectProof("0123", "v9", "abc=-3", "COMPOSITE")
    assert proof_from({"ETag": '"0123"', "ChecksumCRC32": "x"}) == ObjectProof("0123")


def test_links_chain_by_the_bytes_of_the_previous_link() -> None:
    first = next_link("w1", 1, "manifests/date=2021-02-17/1-w1.jsonl", b"a\n", 1, None)
    first_bytes = first.to_bytes()
    second = next_link(
        "w1", 2, "manifests/date=2021-02-17/2-w1.jsonl", b"b\n", 1, (1, sha256_hex(first_bytes))
    )
    assert Link.from_bytes(first_bytes) == first
    assert Link.from_bytes(second.to_bytes()) == second
    assert (second.prev_seq, second.prev_sha256) == (1, sha256_hex(first_bytes))
    assert second.manifest_sha256 == sha256_hex(b"b\n")
    assert first.to_bytes() == first_bytes  # canonical: the same link, the same bytes
    head = Head.of(second.to_bytes())
    assert head == Head("w1", 2, sha256_hex(second.to_bytes()))
    assert Head.from_bytes(head.to_bytes()) == head


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"format": 2}',
        b'{"format": 1, "writer": "../x", "seq": 1}',
        b'{"format": 1, "writer": "w", "seq": -1, "manifest_key": "k", "manifest_sha256": "s",'
        b' "manifest_size": 1, "lines": 1}',
        b'{"format": 1, "writer": "w", "seq": 1, "manifest_key": "k", "manifest_sha256": "s",'
        b' "manifest_size": 1, "lines": 1, "prev_seq": 0}',
    ],
)
def test_a_link_that_is_not_one_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        Link.from_bytes(body)


def test_a_problem_line_names_the_key_and_the_call() -> None:
    entry = ManifestEntry.from_line(LINE)
    problem = Problem(ProblemKind.ALTERED, "recordings/s1.wav", "etag e2, recorded e1", entry)
    assert problem.line() == (
        "ALTERED recordings/s1.wav (sip_call_id s1, cdr c1): etag e2, recorded e1"
    )
    assert Problem(ProblemKind.MANIFEST_HIDDEN, "m", "d").line() == "MANIFEST-HIDDEN m: d"
