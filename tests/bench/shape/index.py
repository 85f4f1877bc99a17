"""The console's index of a generated archive, in a process of its own (peak RSS is its own).

``python -m tests.bench.shape.index build DB``: ``CallIndex.refresh`` from an
empty file, over the storage of ``ARCHIVER_STORAGE__*``; prints lines, objects,
seconds. ``python -m tests.bench.shape.index search DB SAMPLES``: the console's
searches (:func:`tests.bench.console_index.queries`) with values from SAMPLES,
each kind 30 times: p50/p95/max in ms.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from archiver.console.index import CallIndex
from archiver.console.tables import SCHEMA
from archiver.index_db import IndexDatabase
from archiver.settings import Settings
from archiver.storage import open_store
from tests.bench.console_index import _stats, queries


async def build(db_path: Path) -> dict[str, Any]:
    settings = Settings()
    async with open_store(settings.storage, max_connections=24) as store:
        db = IndexDatabase.fresh(db_path, SCHEMA)
        index = CallIndex(db)
        started = time.perf_counter()
        built = await index.refresh(store)
        seconds = time.perf_counter() - started
        lines = await index.count()
        db.close()
    return {"lines": lines, "manifests": built.manifests, "seconds": round(seconds, 1)}


async def search(db_path: Path, samples: list[dict[str, Any]]) -> dict[str, Any]:
    db = IndexDatabase(db_path, SCHEMA)
    index = CallIndex(db)
    out: dict[str, Any] = {}
    worst = 0.0
    for kind, asked in queries(samples, random.Random(5)).items():
        times = []
        for query in asked:
            t0 = time.perf_counter()
            await index.search(query, 0, 50)
            times.append(time.perf_counter() - t0)
        out[kind] = _stats(times)
        worst = max(worst, out[kind]["p95_ms"])
    db.close()
    return {"by_kind": out, "worst_p95_ms": worst}


def main() -> None:
    what, db = sys.argv[1], Path(sys.argv[2])
    if what == "build":
        print(json.dumps(asyncio.run(build(db))))
    else:
        samples = json.loads(Path(sys.argv[3]).read_text())
        print(json.dumps(asyncio.run(search(db, samples))))


if __name__ == "__main__":
    main()
