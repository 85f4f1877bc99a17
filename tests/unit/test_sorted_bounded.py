"""A local folder's listing in bounded memory (``archiver.storage.local_files``): the
entries of a folder larger than ``SORT_RUN`` are sorted in runs spilled to private
temporary files and merged. The merge gives exactly ``sorted()``'s order for any
names a folder can hold (undecodable bytes, newlines, NUL-packed entries, names that
are prefixes of each other), leaves no file open once read or let go, and the store
lists a large folder (``list``, ``list_keys``) as it lists a small one."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import tempfile
from pathlib import Path
from typing import IO, Any

import pytest

from archiver.storage import local_files
from archiver.storage.base import listed_keys
from archiver.storage.local import LocalStore
from archiver.storage.local_files import key_runs, scan_names, sorted_bounded

_ALPHABET = ["a", "b", "a.", "/", "\0", "\n", "é", "\udcff", "0", "9", "~", " ", ""]


def _strings(rng: random.Random, count: int) -> list[str]:
    found = {"".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 5))) for _ in range(count)}
    return list(found)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class _Spills:
    """Counts the temporary files the sort makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made = 0
        real = tempfile.TemporaryFile

        def counted(*args: Any, **kwargs: Any) -> IO[bytes]:
            self.made += 1
            file: IO[bytes] = real(*args, **kwargs)
            return file

        monkeypatch.setattr(tempfile, "TemporaryFile", counted)


@pytest.mark.parametrize("run", [1, 2, 3, 7, 64, 10_000])
@pytest.mark.parametrize("seed", range(6))
def test_the_merge_is_sorted_for_any_names(
    seed: int, run: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    items = _strings(rng, rng.randint(0, 400))
    spills = _Spills(monkeypatch)
    before = _open_fds()
    assert list(sorted_bounded(iter(items), run)) == sorted(items)
    assert spills.made == len(items) // run  # a run of exactly ``run`` is spilled; the rest not
    assert _open_fds() == before  # every run's file closed at its end


def test_a_merge_let_go_half_read_closes_its_files(monkeypatch: pytest.MonkeyPatch) -> None:
    spills = _Spills(monkeypatch)
    before = _open_fds()
    merged = sorted_bounded((f"{n:05}" for n in range(1000, 0, -1)), 100)
    assert spills.made == 10
    assert _open_fds() == before + 10
    assert [next(merged) for _ in range(3)] == ["00001", "00002", "00003"]
    del merged
    gc.collect()
    assert _open_fds() == before


def test_a_failing_read_of_the_folder_closes_what_it_spilled() -> None:
    before = _open_fds()

    def failing() -> Any:
        yield from ("c", "b", "a", "d")
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="went away"):
        sorted_bounded(failing(), 1)
    assert _open_fds() == before


def test_names_and_key_runs_of_a_large_folder(tmp_path: Path) -> None:
    rng = random.Random(5)
    names = {f"{rng.randrange(10**6):06}.json" for _ in range(500)}
    for name in names:
        (tmp_path / name).write_bytes(b"{}")
    (tmp_path / "000500").mkdir()
    (tmp_path / "000500" / "inner.json").write_bytes(b"{}")
    expected = sorted([*names, "000500/"])
    assert list(scan_names(tmp_path, run=7)) == expected
    runs = list(key_runs(tmp_path, "k/", "k/", most=50))
    assert all(0 < len(r) <= 50 for r in runs)
    keys = [key for r in runs for key in r]
    assert keys == sorted(["k/" + n for n in names] + ["k/000500/inner.json"])


@pytest.mark.parametrize("prefix", ["", "c/", "c/w1/", "c/w1/0000", "c/w1/00001", "m"])
def test_the_store_lists_a_large_folder_as_a_small_one(
    tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain folder of 1,200 links, the store's sort run 50: the listing (and its
    keys-only form) is the same as with everything sorted at once."""
    chain = tmp_path / "c" / "w1"
    chain.mkdir(parents=True)
    for seq in random.Random(9).sample(range(1, 5000), 1200):
        (chain / f"{seq:012}.json").write_bytes(b"x" * (seq % 7))
    (tmp_path / "c" / "w1.json").write_bytes(b"{}")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.jsonl").write_bytes(b"{}")
    store = LocalStore(tmp_path)

    async def listing() -> tuple[list[tuple[str, int]], list[str]]:
        full = [(o.key, o.size) async for o in store.list(prefix)]
        return full, [k async for k in listed_keys(store, prefix)]

    whole = asyncio.run(listing())
    monkeypatch.setattr(local_files, "SORT_RUN", 50)
    spills = _Spills(monkeypatch)
    assert asyncio.run(listing()) == whole
    # The chain folder read twice (``list``, then ``list_keys``), 24 runs each; none for m/.
    assert spills.made == (0 if prefix == "m" else 2 * (1200 // 50))
    assert [k for k, _ in whole[0]] == whole[1] == sorted(whole[1])
    assert len(whole[1]) == sum(
        1
        for k in ["c/w1.json", "m/a.jsonl", *(f"c/w1/{p.name}" for p in chain.iterdir())]
        if k.startswith(prefix)
    )


def test_no_writable_temporary_directory_sorts_in_memory_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only container with no volume: the listing still works, as before."""

    def none_usable(*args: Any, **kwargs: Any) -> IO[bytes]:
        raise FileNotFoundError(2, "No usable temporary directory found")

    monkeypatch.setattr(tempfile, "TemporaryFile", none_usable)
    items = [f"{n:04}" for n in random.Random(3).sample(range(10_000), 300)]
    with caplog.at_level("WARNING", logger="archiver.storage"):
        assert list(sorted_bounded(iter(items), 10)) == sorted(items)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "sorting it in memory" in warnings[0]
    assert "No usable temporary directory" in warnings[0]
