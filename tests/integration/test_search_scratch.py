"""``archiver search`` without ``--limit`` keeps its listing and its matches on a scratch
file, not in memory (a five-year listing is about 0.5 GB as objects, a broad query's
matches about 4 KB each): the same calls in the same order as the search held in memory,
written as the same JSON and CSV, on a real SQLite scratch file over a local folder."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from archiver.cli import main
from archiver.commands import search as search_command
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import list_manifests
from archiver.privacy.lines import Opener, opened_names
from archiver.retrieval import manifest_listing
from archiver.retrieval.manifest_listing import list_into
from archiver.retrieval.scratch import open_scratch
from archiver.retrieval.search import (
    MATCHES_IN_ORDER,
    Matches,
    SearchQuery,
    collect,
    export_columns,
    search,
    to_csv,
    to_json,
    write_csv,
    write_json,
)
from archiver.storage.local import LocalStore


def line(n: int, **overrides: object) -> dict[str, Any]:
    """A manifest line (the fields search reads), with ``overrides``."""
    base: dict[str, Any] = {
        "sip_call_id": f"sip-{n}",
        "cdr_id": f"cdr-{n}",
        "provider": "cdr_v2",
        "object_key": f"recordings/2021/02/17/sip-{n}.wav",
        "sha256": "ab" * 32,
        "size": 10,
        "call_started_at": "2021-02-17T08:00:00+07:00",
        "direction": "inbound",
        "from_number": "+84 90 123 4567",
        "extension": "101",
    }
    base.update(overrides)
    return base


AGENTS = ["An", "Bình", "=cmd()", "line\nbreak"]


def _archive(root: Path, rng: random.Random) -> LocalStore:
    n = 0
    for day in (16, 17, 18):
        for obj in range(rng.randint(1, 9)):
            rows = []
            for _ in range(rng.randint(0, 9)):
                n += 1
                extra = {f"extra_{rng.randint(0, 3)}": rng.choice(["x", 1, None, {"a": [1]}])}
                rows.append(line(n, cdr_id=f"cdr-{rng.randint(0, 10**6)}-{n}",
                                 call_started_at=f"2021-02-{day}T08:0{rng.randint(0, 5)}:00+07:00",
                                 extension=rng.choice(["101", "102"]),
                                 agent=rng.choice(AGENTS), **extra))  # fmt: skip
            key = root / f"manifests/date=2021-02-{day}/{obj:012}-legacy.jsonl"
            key.parent.mkdir(parents=True, exist_ok=True)
            key.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return LocalStore(root)


@pytest.mark.parametrize("seed", range(4))
def test_the_search_on_a_scratch_file_is_the_search_in_memory(tmp_path: Path, seed: int) -> None:
    async def run() -> None:
        store = _archive(tmp_path / "archive", random.Random(seed))
        in_memory = await list_manifests(store, None, None, UTC)
        for query in (SearchQuery(), SearchQuery(extension="101"), SearchQuery(agent="an")):
            every, _ = await search(store, in_memory, query)
            with open_scratch(tmp_path, "search") as db:
                listed = await list_into(db, store, None, None, UTC)
                assert len(listed) == len(in_memory)
                matches = Matches(db)
                assert await collect(store, listed, query, matches) == 0
                spilled = list(matches)
                assert len(matches) == len(every)
                assert [c.sip_call_id for c in spilled] == [c.sip_call_id for c in every]
                assert [dict(c.fields) for c in spilled] == [dict(c.fields) for c in every]
                assert [c.manifest_key for c in spilled] == [c.manifest_key for c in every]
                assert matches.columns() == export_columns(every)
                out = io.StringIO()
                write_csv(iter(matches), matches.columns(), out)
                assert out.getvalue() == to_csv(every)
            assert not list(tmp_path.glob("archiver-*")), "the scratch folder is removed"

    asyncio.run(run())


def _calls(rows: list[dict[str, Any]]) -> list[ManifestEntry]:
    return [ManifestEntry.from_line(row, f"manifests/date=2021-02-17/{i:012}-w.jsonl")
            for i, row in enumerate(rows)]  # fmt: skip


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [line(1)],
        [line(1, nested={"a": [1, {"b": None}], "c": {}}, empty=[]), line(2, agent="Nguyễn")],
        [line(3, agent='quote " and \\ backslash\nnew line', weird="\u2028\ud800")],
    ],
)
def test_json_written_a_call_at_a_time_is_the_json_of_all(rows: list[dict[str, Any]]) -> None:
    calls = _calls(rows)
    out = io.StringIO()
    write_json(iter(calls), out)
    assert out.getvalue() == to_json(calls)
    assert [row["sip_call_id"] for row in json.loads(out.getvalue())] == [
        c.sip_call_id for c in calls
    ]


def test_equal_starts_keep_the_order_found_and_odd_text_survives(tmp_path: Path) -> None:
    rows = [line(n, cdr_id="same", agent="\ud800 lone surrogate" if n == 3 else "x")
            for n in range(7)]  # fmt: skip
    with open_scratch(tmp_path, "search") as db:
        matches = Matches(db)
        for call in _calls(rows):
            matches.add(call)
        back = list(matches)
    assert [c.sip_call_id for c in back] == [f"sip-{n}" for n in range(7)]
    assert back[3].fields["agent"] == "\ud800 lone surrogate"


def _sealed(fields: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield fields
    sealed = {k: v for k, v in fields.items() if k != "from_number"}
    yield {**sealed, "from_number_hash": "h" * 64, "from_number_sealed": "s"}
    yield {**sealed, "from_number_hash": "h" * 64, "to_number_hash": None, "to_number_sealed": None}
    yield {"from_number": "kept", **sealed, "to_number_hash": "h" * 64}


def test_the_columns_of_an_opened_line_are_known_before_it_is_opened(tmp_path: Path) -> None:
    opener = Opener(None)
    for fields in _sealed(line(1)):
        assert opened_names(fields) == list(opener.fields(fields)), fields


def test_the_csv_header_names_a_sealed_line_s_opened_numbers(tmp_path: Path) -> None:
    sealed = next(f for f in _sealed(line(1)) if "from_number_hash" in f)
    opener = Opener(None)
    with open_scratch(tmp_path, "search") as db:
        matches = Matches(db, names=opened_names)
        for call in _calls([sealed, line(2)]):
            matches.add(call)
        out = io.StringIO()
        write_csv((opener.entry(c) for c in matches), matches.columns(), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["sip_call_id"] for row in rows] == ["sip-1", "sip-2"]
    assert rows[0]["from_number"]
    assert rows[1]["from_number"] == "+84 90 123 4567"
    assert "from_number_hash" in rows[0]


def test_a_listing_on_a_scratch_file_gives_each_object_once(tmp_path: Path) -> None:
    async def run() -> None:
        store = _archive(tmp_path / "archive", random.Random(9))
        db = sqlite3.connect(tmp_path / "scratch.sqlite3")
        listed = await list_into(db, store, None, None, UTC)
        keys = [obj.key for obj in listed]
        assert keys == sorted(keys)
        assert len(keys) == len(set(keys)) == len(listed)
        assert listed.take(keys[0])
        assert not listed.take(keys[0])
        assert not listed.take("manifests/date=2021-02-17/not-listed.jsonl")
        assert [obj.key for obj in listed.left()] == keys[1:]
        db.close()

    asyncio.run(run())


@pytest.fixture
def cli_archive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A local archive of random calls, the CLI's settings pointing at it, a scratch folder."""
    for name in list(os.environ):
        if name.startswith("ARCHIVER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    _archive(tmp_path / "archive", random.Random(5))
    monkeypatch.setenv("ARCHIVER_STORAGE__URL", str(tmp_path / "archive"))
    (tmp_path / "scratch").mkdir()
    monkeypatch.setenv("ARCHIVER_SCRATCH_DIR", str(tmp_path / "scratch"))
    return tmp_path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["search", *argv]) == 0
    return capsys.readouterr().out


def test_the_command_answers_as_with_a_limit_and_leaves_no_scratch(
    cli_archive: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for form in ("json", "csv"):
        whole = _cli(capsys, "--format", form)
        assert whole == _cli(capsys, "--format", form, "--limit", "100000")
        assert whole != _cli(capsys, "--format", form, "--limit", "2")
    count = len(json.loads(_cli(capsys, "--format", "json")))
    assert count > 6
    assert not list((cli_archive / "scratch").iterdir()), "the scratch file is removed"
    whole_table = _cli(capsys).splitlines()
    assert sum("sip_call_id" in row for row in whole_table) == 1
    monkeypatch.setattr(search_command, "_TABLE_ROWS", 3)  # the table in pieces of 3
    table = _cli(capsys).splitlines()
    assert sum("sip_call_id" in row for row in table) == 1, "one header"
    assert sum("sip-" in row for row in table) == count
    assert table[-1] == f"{count} call(s)"
    # Every piece as wide as the whole table's columns: each line lines up with the header.
    assert {cell_len(line) for line in table[:-1]} == {cell_len(table[0])}
    separators = {i for i, ch in enumerate(table[0]) if ch == "┃"}  # the header's
    assert len(separators) == len(search_command.TABLE_COLUMNS) - 1
    assert all({i for i, ch in enumerate(line) if ch == "│"} == separators for line in table[2:-1])
    audits = [json.loads(p.read_text()) for p in (cli_archive / "archive").rglob("*-search-*.json")]
    assert {a["details"]["results"] for a in audits if a["action"] == "search"} == {count, 2}


def test_a_scratch_place_that_cannot_be_written_is_memory_with_a_warning(
    cli_archive: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _cli(capsys, "--format", "csv")
    (cli_archive / "not-a-folder").write_text("")
    monkeypatch.setenv("ARCHIVER_SCRATCH_DIR", str(cli_archive / "not-a-folder"))
    assert main(["search", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert out == expected
    assert "keeping the command's scratch tables in memory" in err


def test_the_matches_are_read_back_in_the_table_s_order_with_no_sort(tmp_path: Path) -> None:
    # A sort would spill the rows to SQLite's temporary folder, not ARCHIVER_SCRATCH_DIR.
    with open_scratch(tmp_path, "search") as db:
        Matches(db)
        plan = " ".join(str(row) for row in db.execute("EXPLAIN QUERY PLAN " + MATCHES_IN_ORDER))
    assert "TEMP B-TREE" not in plan, plan


def test_odd_ids_and_a_file_name_that_is_not_utf8_are_searched(
    cli_archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A provider's id with a lone surrogate (JSON can say \ud800), a manifest object whose
    # name is not UTF-8 (a local folder lists it with a surrogate): SQLite refuses both as
    # text; the search answers as the one held in memory.
    folder = cli_archive / "archive" / "manifests" / "date=2021-02-17"
    odd = [line(900, cdr_id="odd\ud800id", provider="p\udcffq"), line(901)]
    raw = "".join(json.dumps(r) + "\n" for r in odd).encode()
    with open(os.fsencode(folder) + b"/zz\xff-legacy.jsonl", "wb") as file:
        file.write(raw)
    whole = _cli(capsys, "--format", "json")
    assert whole == _cli(capsys, "--format", "json", "--limit", "100000")
    found = json.loads(whole)
    assert {"sip-900", "sip-901"} <= {row["sip_call_id"] for row in found}
    assert any(row["cdr_id"] == "odd\ud800id" for row in found)


def test_text_that_is_not_utf8_is_written_escaped_in_every_format(
    cli_archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = cli_archive / "archive" / "manifests" / "date=2021-02-17"
    odd = [line(902, cdr_id="odd\ud800id", agent="=x\udcff", **{"f\ud801": "v"})]
    (folder / "odd-legacy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in odd))
    found = json.loads(_cli(capsys, "--format", "json", "--agent", "=x\udcff"))
    assert [row["cdr_id"] for row in found] == ["odd\ud800id"]  # JSON's escape, exact
    rows = list(csv.DictReader(io.StringIO(_cli(capsys, "--format", "csv", "--extension", "101"))))
    (mine,) = [row for row in rows if row["sip_call_id"] == "sip-902"]
    assert mine["cdr_id"] == "odd\\ud800id"
    assert mine["agent"] == "'=x\\udcff"  # still not a formula
    assert mine["f\\ud801"] == "v"
    table = _cli(capsys, "--agent", "=x\udcff")
    assert "odd\\ud800id" in table


def test_verify_names_a_manifest_object_whose_name_is_not_utf8(
    cli_archive: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No archiver writes such a name: verify says so (exit 5), reads the rest, and does
    # not end with a traceback (its tables keep keys as text).
    folder = os.fsencode(cli_archive / "archive" / "manifests" / "date=2021-02-17")
    for name in (b"zz\xff-legacy.jsonl", b"zz\xfe-legacy.jsonl"):
        with open(folder + b"/" + name, "wb") as file:
            file.write((json.dumps(line(903)) + "\n").encode())
    monkeypatch.setattr(manifest_listing, "FOREIGN_KEPT", 1)
    assert main(["verify", "--no-rehash"]) == 5
    out = capsys.readouterr().out
    odd = [row for row in out.splitlines() if "not UTF-8" in row]
    assert len(odd) == 2, out
    assert sum(row.startswith("OUT-OF-CHAIN manifests/date=2021-02-17/zz\\udc") for row in odd) == 1
    assert sum(row.startswith("OUT-OF-CHAIN manifests/: 1 more:") for row in odd) == 1
