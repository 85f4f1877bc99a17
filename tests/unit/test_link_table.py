"""Verify's chain links on its scratch file: read back equal, in key order, like a dict."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.manifest.chain import Link
from archiver.retrieval.link_table import LinkTable, in_key_order, key_by_link
from archiver.retrieval.scratch import open_scratch


def _link(writer: str, seq: int, key: str) -> Link:
    prev = (seq - 1, f"{seq - 1:064x}") if seq > 1 else (None, None)
    return Link(writer, seq, key, f"{seq:064x}", 100 + seq, seq % 5, *prev)


def _links() -> dict[str, Link]:
    keys = [
        "manifests/2026/12/05/w1-0002.jsonl",
        "_archiver/tombstones/2026/12/05/w1-0003.jsonl",
        "manifests/2026/12/04/w2-0001.jsonl",
        "_archiver/supersede/2026/12/05/w2-0002.jsonl",
        "manifests/2026/12/05/w1-0001.jsonl",
        "manifests/2026/12/05/w\u00e9-0001.jsonl",  # sorts after every ASCII key
    ]
    return {key: _link(f"w{n % 2 + 1}", n + 1, key) for n, key in enumerate(keys)}


def test_it_behaves_as_the_dict_it_replaces(tmp_path: Path) -> None:
    expected = _links()
    with open_scratch(tmp_path, "verify") as db:
        table = LinkTable(db)
        assert len(table) == 0
        assert "x" not in table
        assert table.get("x") is None
        for key, link in expected.items():
            table[key] = link
        assert len(table) == len(expected)
        for key, link in expected.items():
            assert key in table
            assert table[key] == link
            assert table.get(key) == link
        assert list(table) == sorted(expected)
        assert list(table.items()) == sorted(expected.items())
        for prefix in ("", "manifests/", "_archiver/tombstones/", "manifests/2026/12/05/", "zz"):
            assert list(in_key_order(table, prefix)) == list(in_key_order(expected, prefix))
        gone = "manifests/2026/12/04/w2-0001.jsonl"
        del table[gone]
        del expected[gone]
        assert gone not in table
        assert list(table.items()) == sorted(expected.items())
        with pytest.raises(KeyError):
            del table[gone]
        with pytest.raises(KeyError):
            table[gone]
        assert 3 not in table


def test_it_pages_through_more_keys_than_a_page(tmp_path: Path) -> None:
    with open_scratch(tmp_path, "verify") as db:
        table = LinkTable(db)
        keys = [f"manifests/2026/12/05/w1-{n:05d}.jsonl" for n in range(2500)]
        for n, key in enumerate(reversed(keys)):
            table[key] = _link("w1", n + 1, key)
        walked = []
        for key, link in in_key_order(table, "manifests/"):
            walked.append(key)
            table["seen/" + key] = link  # writes between pages do not disturb the walk
        assert walked == keys


def test_a_manifest_key_by_its_link_as_from_the_dict(tmp_path: Path) -> None:
    expected = _links()
    twin = "manifests/2026/12/06/w1-0001.jsonl"  # a second key of one link: the last wins
    link = expected[twin] = expected["manifests/2026/12/05/w1-0001.jsonl"]
    expected = dict(sorted(expected.items()))
    with open_scratch(tmp_path, "verify") as db:
        table = LinkTable(db)
        for key, link in expected.items():
            table[key] = link
        from_table, from_dict = key_by_link(table), key_by_link(expected)
        for writer in ("w1", "w2", "w3"):
            for seq in range(8):
                assert from_table(writer, seq) == from_dict(writer, seq)
        assert from_table(link.writer, link.seq) == twin
        assert from_table("w3", 1) is None
