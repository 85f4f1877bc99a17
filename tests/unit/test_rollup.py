"""The rollup format (archiver.manifest.rollup): pure building, parsing and checking."""

from __future__ import annotations

import base64
import json

import pytest

from archiver.manifest.chain import Link, next_link, sha256_hex
from archiver.manifest.rollup import (
    RollupEntry,
    RollupRecord,
    build_rollup,
    check_rollup,
    entries_to_bytes,
    parse_entries,
)
from archiver.storage.layout import (
    ROLLUP_DATA,
    ROLLUP_ENTRIES,
    ROLLUP_RECORD,
    RollupKey,
    manifest_key,
    parse_rollup_key,
    rollup_data_key,
    rollup_entries_key,
    rollup_key,
)

W = "w1"


def _chain(count: int, start: int = 1, previous: tuple[int, str] | None = None):
    entries, manifests = [], []
    for seq in range(start, start + count):
        content = b"".join(
            json.dumps({"n": seq, "i": i}).encode() + b"\n" for i in range(seq % 4 + 1)
        )
        day = f"2026-12-0{1 + seq % 3}"
        link = next_link(W, seq, manifest_key(day, seq, W), content, seq % 4 + 1, previous)
        data = link.to_bytes()
        entries.append(RollupEntry(seq, data, b"\x30\x82token" if seq % 2 else None))
        manifests.append(content)
        previous = (seq, sha256_hex(data))
    return entries, manifests


def _built(count: int = 5):
    entries, manifests = _chain(count)
    ebytes, data, record = build_rollup(
        W, 1, entries, manifests, prev_record=None, created_at="2026-12-04T00:00:00Z"
    )
    return entries, manifests, ebytes, data, record


def test_keys_round_trip_and_refuse_lookalikes() -> None:
    assert rollup_key(W, 3) == "_archiver/rollups/w1/000000000003.json"
    assert parse_rollup_key(rollup_key(W, 3)) == RollupKey(W, 3, ROLLUP_RECORD)
    assert parse_rollup_key(rollup_entries_key(W, 3)) == RollupKey(W, 3, ROLLUP_ENTRIES)
    assert parse_rollup_key(rollup_data_key(W, 3)) == RollupKey(W, 3, ROLLUP_DATA)
    for bad in (
        "_archiver/rollups/w1/3.json",
        "_archiver/rollups/w1/000000000000.json",
        "_archiver/rollups/../000000000001.json",
        "_archiver/rollups/w1/000000000001.tsr",
        "_archiver/chain/w1/000000000001.json",
        "_archiver/rollups/w1/sub/000000000001.json",
    ):
        assert parse_rollup_key(bad) is None, bad
    with pytest.raises(ValueError, match="plain token"):
        rollup_key("../x", 1)
    with pytest.raises(ValueError, match="starts at 1"):
        rollup_key(W, 0)


def test_a_built_rollup_checks_out_and_slices_each_object() -> None:
    entries, manifests, ebytes, data, record = _built()
    assert RollupRecord.from_bytes(record.to_bytes()) == record
    assert parse_entries(ebytes) == entries
    checked = check_rollup(record.to_bytes(), ebytes, data, record.key)
    assert checked.ok, checked.problems
    assert [o.manifest_bytes for o in checked.objects] == manifests
    assert [o.seq for o in checked.objects] == [1, 2, 3, 4, 5]
    assert checked.objects[0].token == b"\x30\x82token"
    assert checked.objects[1].token is None
    assert record.end_sha256 == sha256_hex(entries[-1].link)
    assert record.prev_seq is None
    assert record.lines == sum(s % 4 + 1 for s in range(1, 6))
    assert (record.first_date, record.last_date) == ("2026-12-01", "2026-12-03")
    # Each entries line keeps the link's exact text.
    line = json.loads(ebytes.split(b"\n")[0])
    assert line["link"].encode() == entries[0].link
    assert base64.b64decode(line["token"]) == b"\x30\x82token"


def test_a_later_rollup_names_the_link_before_it_and_the_record_before() -> None:
    first_entries, first_manifests = _chain(3)
    _, _, first = build_rollup(
        W, 1, first_entries, first_manifests, prev_record=None, created_at="t"
    )
    entries, manifests = _chain(2, start=5, previous=(3, first.end_sha256))
    _, _, second = build_rollup(
        W, 2, entries, manifests, prev_record=first.to_bytes(), created_at="t"
    )
    assert (second.prev_seq, second.prev_sha256) == (first.last_seq, first.end_sha256)
    assert second.prev_rollup_sha256 == sha256_hex(first.to_bytes())


def test_build_refuses_bytes_the_chain_does_not_prove() -> None:
    entries, manifests = _chain(3)
    with pytest.raises(ValueError, match="is not the object"):
        build_rollup(
            W, 1, entries, [manifests[0], b"x\n", manifests[2]], prev_record=None, created_at="t"
        )
    with pytest.raises(ValueError, match="follows"):
        build_rollup(
            W,
            1,
            [entries[0], entries[2]],
            [manifests[0], manifests[2]],
            prev_record=None,
            created_at="t",
        )
    with pytest.raises(ValueError, match="at least one link"):
        build_rollup(W, 1, [], [], prev_record=None, created_at="t")


def _problems(record: bytes, ebytes: bytes, data: bytes, key: str | None = None) -> str:
    checked = check_rollup(record, ebytes, data, key)
    assert not checked.ok
    assert not checked.objects
    return " | ".join(f"{p.where}: {p.detail}" for p in checked.problems)


def test_altered_lines_entries_or_record_are_named() -> None:
    _, _, ebytes, data, record = _built()
    raw = record.to_bytes()
    altered_data = data.replace(b'"i": 0', b'"i": 9', 1)
    assert rollup_data_key(W, 1) in _problems(raw, ebytes, altered_data)
    assert rollup_entries_key(W, 1) in _problems(raw, ebytes + b"\n", data)
    assert "unreadable" in _problems(b"{", ebytes, data)
    assert "unreadable" in _problems(b'{"format": 1}', ebytes, data)
    assert "says it is" in _problems(raw, ebytes, data, rollup_key(W, 2))


def test_a_record_that_lies_about_its_run_is_caught() -> None:
    entries, manifests, ebytes, data, record = _built()
    body = json.loads(record.to_bytes())
    for name, value in (
        ("end_sha256", "0" * 64),
        ("first_seq", 2),
        ("last_seq", 9),
        ("prev_seq", 0),
        ("lines", 1),
        ("objects", 4),
        ("first_date", "2026-11-30"),
        ("data_key", rollup_data_key(W, 2)),
    ):
        lying = dict(body, **{name: value})
        if name == "prev_seq":
            lying["prev_sha256"] = "1" * 64
        raw = json.dumps(lying).encode()
        assert _problems(raw, ebytes, data), name


def test_entries_rewritten_consistently_still_fail_on_the_slices() -> None:
    """An attacker who rewrites the lines AND the record's data hash: slices disagree."""
    entries, manifests, ebytes, data, record = _built()
    forged = data.replace(b'"i": 0', b'"i": 7', 1)
    body = json.loads(record.to_bytes())
    body["data_sha256"] = sha256_hex(forged)
    assert "the slice of" in _problems(json.dumps(body).encode(), ebytes, forged)


def test_entries_with_a_gap_or_a_foreign_link_are_caught() -> None:
    entries, manifests = _chain(4)
    gap = entries_to_bytes([entries[0], entries[2]])
    other = Link.from_bytes(entries[1].link)
    foreign = RollupEntry(2, Link(**{**_asdict(other), "writer": "w2"}).to_bytes(), None)
    forged = entries_to_bytes([entries[0], foreign])
    for ebytes in (gap, forged):
        data = manifests[0] + (manifests[2] if ebytes is gap else manifests[1])
        body = {
            "format": 1,
            "record": "rollup",
            "writer": W,
            "n": 1,
            "first_seq": 1,
            "last_seq": 3,
            "prev_seq": None,
            "prev_sha256": None,
            "end_sha256": "0" * 64,
            "objects": 2,
            "lines": 2,
            "data_key": rollup_data_key(W, 1),
            "data_sha256": sha256_hex(data),
            "data_size": len(data),
            "entries_key": rollup_entries_key(W, 1),
            "entries_sha256": sha256_hex(ebytes),
            "entries_size": len(ebytes),
            "first_date": "x",
            "last_date": "x",
            "prev_rollup_sha256": None,
            "created_at": "t",
        }
        assert rollup_entries_key(W, 1) in _problems(json.dumps(body).encode(), ebytes, data)


def _asdict(link: Link) -> dict:
    return {name: getattr(link, name) for name in Link.__slots__}


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{}\n",
        b"not json\n",
        b'{"seq": -1, "link": "x", "token": null}\n',
        b'{"seq": 1, "link": "x", "token": "%%%"}\n',
        b'{"seq": 1, "link": "x", "token": null}',
    ],
)
def test_bad_entries_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"entries|newline"):
        parse_entries(raw)


def test_a_listing_proves_a_small_object_only_by_its_size_and_plain_md5_etag() -> None:
    import hashlib

    from archiver.retrieval.rollup_audit import listed_as
    from archiver.storage.base import ObjectProof, StoredObject

    data = b'{"format":1}'
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()

    def listed(size: int, etag: str | None) -> StoredObject:
        return StoredObject("k", "k", size, proof=ObjectProof(etag))

    assert listed_as(listed(len(data), md5), data)
    assert listed_as(listed(len(data), md5.upper()), data)
    assert not listed_as(listed(len(data) + 1, md5), data)  # another size
    assert not listed_as(listed(len(data), None), data)  # a local folder: read it
    assert not listed_as(listed(len(data), md5[:-2] + "-2"), data)  # multipart
    assert not listed_as(listed(len(data), "0" * 32), data)  # SSE-KMS: not the MD5
    assert not listed_as(listed(len(data), md5), data + b" ")
