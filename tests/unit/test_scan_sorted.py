"""The local folder's sorted scan, one packed string an entry
(archiver.storage.local_files.scan_sorted), gives what the list of tuples gave:
the same entries, sizes and mtimes in the same order, with ``after`` and hidden
names left out, on folders of random names that sort close to each other, sorted
in memory or in runs spilled to temporary files and merged."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from archiver.storage.local_files import is_hidden, scan_sorted


def _old_scan_sorted(
    directory: Path, rel: str = "", after: str = ""
) -> list[tuple[str, bool, int, float]]:
    """The scan as it was (main ``d214a5f``): the oracle."""
    entries: list[tuple[str, bool, int, float]] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    entries.append((entry.name, True, 0, 0.0))
                elif after and rel + entry.name <= after:
                    continue
                elif entry.is_file(follow_symlinks=False) and not is_hidden(entry.name):
                    st = entry.stat(follow_symlinks=False)
                    entries.append((entry.name, False, st.st_size, st.st_mtime))
    except (FileNotFoundError, NotADirectoryError):
        return []
    entries.sort(key=lambda e: e[0] + "/" if e[1] else e[0])
    return entries


_PARTS = ["a", "a.", "a-", "a0", "ab", ".", "-", "0", "é", "~", " ", "A", "json", "/"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_PARTS[:-1]) for _ in range(rng.randint(1, 4)))


@pytest.mark.parametrize("run", [None, 1, 3])
@pytest.mark.parametrize("seed", range(20))
def test_the_packed_scan_is_the_tuple_scan(tmp_path: Path, seed: int, run: int | None) -> None:
    rng = random.Random(seed)
    folder = tmp_path / "f"
    folder.mkdir()
    for _ in range(rng.randint(0, 60)):
        name = _name(rng)
        if name in (".", "..") or (folder / name).exists():
            continue
        if rng.random() < 0.3:
            (folder / name).mkdir()
        else:
            (folder / name).write_bytes(b"x" * rng.randint(0, 50))
            os.utime(folder / name, (0, rng.uniform(0, 2e9)))
    (folder / ".a.1.partial").write_bytes(b"hidden")
    rel = rng.choice(["", "k/"])
    for after in ["", rel + _name(rng), rel + "a", "zzz"]:
        scanned = list(scan_sorted(folder, rel, after, run))  # run: spilled in runs of so many
        assert scanned == _old_scan_sorted(folder, rel, after)
    assert list(scan_sorted(tmp_path / "absent", run=run)) == []
    assert list(scan_sorted(folder / ".a.1.partial", run=run)) == []  # not a folder
