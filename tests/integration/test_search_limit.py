"""``archiver search --limit N`` keeps only the N oldest matches as it reads (memory bounded
by the limit, not by the matches), and answers what the whole sorted search's first N
are: on manifest objects of a local folder with calls in random order, many at the same
minute (ordered then by provider and CDR id, as the whole search orders them; manifest
objects are read several at once, so equal keys would come in no fixed order)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC
from pathlib import Path

import pytest

from archiver.manifest.reader import list_manifests
from archiver.retrieval.search import SearchQuery, search
from archiver.storage.local import LocalStore
from tests.support.lines import manifest_line


def line(**overrides: object) -> dict[str, object]:
    """A manifest line (the fields search reads), with ``overrides``."""
    return manifest_line(**overrides)


async def _archive(root: Path, rng: random.Random) -> LocalStore:
    store = LocalStore(root)
    n = 0
    for obj in range(12):
        rows = []
        for _ in range(rng.randint(0, 9)):
            n += 1
            minute = rng.randint(0, 5)  # many calls share their start
            rows.append(line(sip_call_id=f"sip-{n}", cdr_id=f"cdr-{rng.randint(0, 10**6)}-{n}",
                             object_key=f"recordings/2021/02/17/sip-{n}.wav",
                             call_started_at=f"2021-02-17T08:0{minute}:00+07:00",
                             extension=rng.choice(["101", "102"])))  # fmt: skip
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        key = f"manifests/date=2021-02-17/{obj:012}-legacy.jsonl"
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    return store


@pytest.mark.parametrize("seed", range(4))
def test_the_limited_search_is_the_sorted_search_s_first_n(tmp_path: Path, seed: int) -> None:
    async def run() -> None:
        store = await _archive(tmp_path / "archive", random.Random(seed))
        manifests = await list_manifests(store, None, None, UTC)
        for query in (SearchQuery(), SearchQuery(extension="101")):
            every, bad = await search(store, manifests, query, None)
            assert bad == 0
            assert every, "the archive has matches"
            for limit in (1, 2, 3, 7, len(every), len(every) + 5):
                first, _ = await search(store, manifests, query, limit)
                assert [c.sip_call_id for c in first] == [c.sip_call_id for c in every[:limit]]

    asyncio.run(run())
