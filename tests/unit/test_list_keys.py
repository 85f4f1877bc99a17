"""A local folder's keys-only listing (``LocalStore.list_keys``, used through
``archiver.storage.base.listed_keys``) lists exactly the keys of its full listing, in
the same order, on trees of random names that sort close to each other: folders
nested, hidden temporary files, symlinks, every prefix. A wrapper of the store that
has its own ``list`` (to count or fail listings) is listed through it."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from archiver.storage.base import listed_keys
from archiver.storage.local import LocalStore
from tests.support.counting import Counting

_PARTS = ["a", "a.", "a-", "a0", "ab", ".", "-", "0", "é", "~", " ", "A", "json"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_PARTS) for _ in range(rng.randint(1, 3)))


def _tree(root: Path, rng: random.Random, depth: int = 0) -> None:
    for _ in range(rng.randint(0, 12)):
        name = _name(rng)
        path = root / name
        if name in (".", "..") or path.exists() or path.is_symlink():
            continue
        roll = rng.random()
        if roll < 0.3 and depth < 3:
            path.mkdir()
            _tree(path, rng, depth + 1)
        elif roll < 0.38:
            path.symlink_to(root if rng.random() < 0.5 else root / "nowhere")
        else:
            path.write_bytes(b"x" * rng.randint(0, 9))
    (root / f".{_name(rng)}.1234abcd.partial").write_bytes(b"a temporary file")


async def _both(store: LocalStore, prefix: str) -> tuple[list[str], list[str]]:
    full = [obj.key async for obj in store.list(prefix)]
    keys = [key async for key in listed_keys(store, prefix)]
    return full, keys


@pytest.mark.parametrize("seed", range(12))
def test_the_keys_only_listing_is_the_full_listings_keys(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "store"
    root.mkdir()
    (root / "a.json").write_bytes(b"{}")
    _tree(root, rng)
    store = LocalStore(root)
    every = [obj.key for obj in asyncio.run(_all(store))]
    prefixes = {"", "a", "a/", "a-", "ab/a", "zzz", *(k[: rng.randint(0, len(k))] for k in every)}
    for prefix in sorted(prefixes):
        if ".." in prefix.split("/"):
            continue
        full, keys = asyncio.run(_both(store, prefix))
        assert keys == full, prefix
    assert every, "the tree has keys"


async def _all(store: LocalStore) -> list[Any]:
    return [obj async for obj in store.list("")]


def test_a_bad_prefix_is_refused_as_the_full_listing_refuses_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)

    async def keys(prefix: str) -> list[str]:
        return [key async for key in store.list_keys(prefix)]

    for prefix in ("../x", "a\\b", "a\0b", "a/../b"):
        with pytest.raises(ValueError, match="invalid storage prefix"):
            asyncio.run(keys(prefix))


def test_a_wrapper_with_its_own_listing_is_listed_through_it(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "k.jsonl").write_bytes(b"{}")
    wrapper = Counting(LocalStore(tmp_path))

    async def keys() -> list[str]:
        return [key async for key in listed_keys(wrapper, "m/")]  # type: ignore[arg-type]

    assert asyncio.run(keys()) == ["m/k.jsonl"]
    assert wrapper.listed == ["m/"]
    assert os.path.isdir(tmp_path / "m")


class _OwnListing(LocalStore):
    """A subclass that lists otherwise (as a test's store with ETags does)."""

    async def list(self, prefix: str, *, start_after: str = "") -> AsyncIterator[Any]:
        async for obj in super().list(prefix, start_after=start_after):
            if not obj.key.endswith(".skip"):
                yield obj


def test_a_subclass_with_its_own_listing_is_listed_through_it(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    for name in ("a.jsonl", "b.skip"):
        (tmp_path / "m" / name).write_bytes(b"{}")

    async def keys(store: LocalStore) -> list[str]:
        return [key async for key in listed_keys(store, "m/")]

    assert asyncio.run(keys(_OwnListing(tmp_path))) == ["m/a.jsonl"]
    assert asyncio.run(keys(LocalStore(tmp_path))) == ["m/a.jsonl", "m/b.skip"]
