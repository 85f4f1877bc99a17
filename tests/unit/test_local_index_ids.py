"""What the id index of ``get`` takes from a manifest object: its ids, and their hashes (pure)."""

from __future__ import annotations

import json

import pytest

from archiver.commands.finding import lines_with
from archiver.manifest.reader import decoded_lines, line_ids
from archiver.retrieval.local_index import id_hash, manifest_ids


def _lines(*rows: object) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)


def test_both_ids_of_every_line_normalized_as_get_compares_them() -> None:
    content = _lines(
        {"sip_call_id": " abc@pbx ", "cdr_id": "c-1"},
        {"sip_call_id": "Cafe\u0301@pbx", "cdr_id": 42},
        {"sip_call_id": "same", "cdr_id": "same"},
    )
    assert manifest_ids(content) == {"abc@pbx", "c-1", "Caf\u00e9@pbx", "42", "same"}


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n\n",
        b"not json\n",
        b"[1, 2]\n",
        b'"text"\n',
        b'{"sip_call_id": ""}\n',
        b"\xff\xfe\n",
    ],
)
def test_what_is_not_a_line_with_an_id_adds_nothing(raw: bytes) -> None:
    assert manifest_ids(raw + _lines({"sip_call_id": "kept", "cdr_id": None})) == {"kept"}


def test_the_hash_is_a_signed_64_bit_value_stable_across_processes() -> None:
    # blake2b, not hash(): the file outlives the process, whose str hashes are salted;
    # another function would make every index file already built answer wrongly.
    assert id_hash("abc@pbx") == id_hash("abc@pbx") == -6869098344611923844
    assert -(2**63) <= id_hash("x") < 2**63
    assert id_hash("abc@pbx") != id_hash("abc@pbx2")


def test_a_lookup_validates_only_the_lines_holding_the_id() -> None:

    good = {
        "sip_call_id": "Cafe\u0301@pbx",
        "cdr_id": "c-1",
        "provider": "cdr_v2",
        "object_key": "r/c-1.wav",
        "sha256": "a" * 64,
        "size": 10,
    }
    content = (
        _lines(
            good,
            {**good, "cdr_id": "c-2", "sha256": "not hex"},  # the id's, invalid: left out
            {"sip_call_id": "other", "size": "unchecked"},  # another call's: not validated
        )
        + b"garbage\n"
    )
    [found] = lines_with("manifests/m.jsonl", content, " Caf\u00e9@pbx ")
    assert (found.cdr_id, found.manifest_key) == ("c-1", "manifests/m.jsonl")
    assert lines_with("manifests/m.jsonl", content, "nobody") == []


@pytest.mark.parametrize(
    "content",
    [
        _lines({"sip_call_id": "a@pbx", "cdr_id": "c-1"}, {"sip_call_id": "b", "cdr_id": "c-2"}),
        _lines({"sip_call_id": 'quo"te', "cdr_id": "caf\u00e9"}),  # escapes: decoded
        json.dumps({"sip_call_id": "Cafe\u0301", "cdr_id": "x"}).encode() + b"\n",  # \u escapes
        b'{"\\u0063dr_id": "escaped-key", "sip_call_id": "s"}\n',
        _lines({"sip_call_id": "s", "cdr_id": 7}, {"sip_call_id": "t", "cdr_id": None}),
        b'{"cdr_id": "first", "cdr_id": "second"}\n',  # decoding keeps the last
        _lines({"sip_call_id": "s", "extra": {"cdr_id": "nested"}, "note": "cdr_id"}),
        b'{"sip_call_id" :  "spaced" , "cdr_id":"tight"}\n',
        b'{"sip_call_id": "ok", "agent": "\xff\xfe"}\n{"cdr_id": "after"}\n',
        b'{"sip_call_id": "\xff"}\n{"cdr_id": "valid"}\n',
        b'{"sip_call_id": "cut\n{"cdr_id": "next"}\n',
        b'\x00{"cdr_id": "nul"}\n',
    ],
)
def test_the_search_without_decoding_misses_no_id_decoding_finds(content: bytes) -> None:
    # The index may name an object too many (one more read), never one too few.
    decoded = {i for line in decoded_lines(content) for i in line_ids(line)}
    assert manifest_ids(content) >= decoded


def test_the_manifest_objects_present_kept_as_bits_per_writer() -> None:
    from archiver.commands.finding import _BITMAP_SEQS, _Present

    present = _Present()
    for writer, seq in (("w1", 0), ("w1", 9), ("w2", 1_000_000), ("w1", _BITMAP_SEQS), ("w1", -1)):
        present.add(writer, seq)
    assert all(present.has(w, q) for w, q in (("w1", 0), ("w1", 9), ("w2", 1_000_000)))
    assert present.has("w1", _BITMAP_SEQS)
    assert present.has("w1", -1)
    assert not any(
        present.has(w, q)
        for w, q in (("w1", 1), ("w1", 8), ("w2", 9), ("w3", 0), ("w1", 10**12), ("w2", 999_999))
    )


_AWKWARD_IDS = [
    "plain-1@pbx",
    " lead",
    "trail ",
    "in ner",
    "",
    " ",
    "\x1cfs\x1f",  # str.strip() strips these; json.dumps escapes them
    "tab\tin",
    "Cafe\u0301",  # NFC changes it
    "nbsp\u00a0",  # str.strip() strips it
    "\u3000wide",
    "\u0110\u1ee9c",
    "\ud800lone",  # a lone surrogate, as JSON may spell it
    'quo"te',
    "back\\slash",
    "0",
]


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_the_ids_found_without_decoding_are_the_ids_decoding_finds(ensure_ascii: bool) -> None:
    # An object as the archiver writes it: exactly the decoded ids, however awkward.
    for sip in _AWKWARD_IDS:
        for cdr in ("c-1", sip, " c-2 "):
            rows = [
                {"sip_call_id": sip, "cdr_id": cdr, "n": 1},
                {"sip_call_id": "x", "cdr_id": "c"},
            ]
            content = b"".join(
                json.dumps(r, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass") + b"\n"
                for r in rows
            )
            decoded = {i for line in decoded_lines(content) for i in line_ids(line)}
            assert manifest_ids(content) == decoded, (sip, cdr)


def test_the_hashes_taken_at_once_are_each_ids_hash() -> None:
    from archiver.retrieval.id_rows import id_hashes

    idents = [i for i in _AWKWARD_IDS if i] + ["x" * 300]
    encoded = [i.encode("utf-8", "surrogatepass") for i in idents]
    assert id_hashes(encoded) == [id_hash(i) for i in idents]
    assert id_hashes([]) == []
