"""The console index's packed lines: exact round trips, the elided checksum only when it is
the recording's own, and a damaged value refused (pure)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from archiver.console.packed import pack, unpack
from archiver.manifest.rollup_read import rollup_refs
from archiver.storage.base import StoredObject


def _line(**fields: object) -> str:
    digest = hashlib.sha256(b"x").digest()
    body = {
        "sip_call_id": "abc@10.0.0.1",
        "sha256": digest.hex(),
        "checksum_sha256": base64.b64encode(digest).decode(),
        "agent_name": "Trần Thị Lan",
        **fields,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "line",
    [
        _line(),
        _line(checksum_sha256="bm90IHRoZSBzYW1lIGJ5dGVz"),  # another object's checksum
        _line(checksum_sha256=None),
        _line(note="\\u0000 stays text"),
        _line(sha256="not hex", checksum_sha256="x"),
        '{"a": 1, "b" : [1, 2]}',  # spacing kept as written
        "",
    ],
)
def test_a_packed_line_comes_back_exactly(line: str) -> None:
    assert unpack(pack(line)) == line
    assert unpack(pack(line.encode())) == line


def test_the_recordings_own_checksum_costs_nothing() -> None:
    random = hashlib.sha256(b"another object").digest()
    same, other = _line(), _line(checksum_sha256=base64.b64encode(random).decode())
    assert len(pack(same)) < len(pack(other)) - 20


@pytest.mark.parametrize("damaged", [b"", b"\x00\x01garbage", pack(_line())[:-3]])
def test_a_damaged_value_is_refused(damaged: bytes) -> None:
    with pytest.raises(ValueError, match="damaged"):
        unpack(damaged)


def test_only_finished_rollups_are_read() -> None:
    def obj(key: str, size: int = 10) -> StoredObject:
        return StoredObject(key, key, size, None)

    listing = [
        obj("_archiver/rollups/w1/000000000001.entries.jsonl"),
        obj("_archiver/rollups/w1/000000000001.jsonl"),
        obj("_archiver/rollups/w1/000000000001.json"),
        obj("_archiver/rollups/w1/000000000002.entries.jsonl"),  # unfinished: no record
        obj("_archiver/rollups/w1/notes.txt"),  # not a rollup's
        obj("_archiver/rollups/w2/000000000001.json"),  # its other parts not listed
    ]
    refs = rollup_refs(listing)
    assert [(r.writer, r.n) for r in refs] == [("w1", 1), ("w2", 1)]
    assert refs[1].sizes["entries"] is None
