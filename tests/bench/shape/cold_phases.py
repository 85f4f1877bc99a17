"""The phases of ``get``'s cold index build over a generated archive, timed in one process.

``python -m tests.bench.shape.cold_phases DIR [--pool-after N]`` builds the
local id index of DIR/archive (written by ``python -m tests.bench.shape
generate``) from nothing, as a cold ``get`` does, and prints when the rollups
were all read (the staged hashes' sort starts), when the sort ended, when the
whole update ended, the rollups checked in the worker and here, and the
process's peak RSS (``VmHWM``; the workers' are their own). ``--pool-after``
is the rollups a build reads in this process at most before it starts
workers (the product's default, 16; a large number keeps it in one process).
The command's own figures (wall, CPU and RSS of the tree) are the ``get`` leg
of ``python -m tests.bench.shape measure``.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from pathlib import Path

from archiver import memory
from archiver.index_db import IndexDatabase
from archiver.retrieval import id_store
from archiver.retrieval.local_index import POOL_AFTER_ROLLUPS, SCHEMA, IdIndex
from archiver.storage.local import LocalStore

_START = time.monotonic()


def _mark(what: str) -> None:
    print(f"{time.monotonic() - _START:7.1f} s  {what}", flush=True)


def _timed_unstage(conn: sqlite3.Connection, unstage=id_store.unstage) -> None:  # type: ignore[no-untyped-def]
    if conn.execute("SELECT 1 FROM id_hashes_staged LIMIT 1").fetchone() is None:
        return
    _mark("the staged hashes' sort starts (every rollup read)")
    unstage(conn)
    _mark("the sort ended")


async def _build(work: Path, pool_after: int) -> None:
    index = work / "cold-phases.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    db = IndexDatabase(index, SCHEMA)
    try:
        ids = IdIndex(db, pool_after=pool_after)
        _mark("start")
        await ids.refresh(LocalStore(work / "archive"))
        _mark(f"built (rollups: {ids.pooled} in the worker, {ids.shared} here)")
    finally:
        db.close()
    status = Path("/proc/self/status").read_text().splitlines()
    print(*(line for line in status if line.startswith("VmHWM")))


def main() -> None:
    """Parse the arguments and time the build."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--pool-after", type=int, default=POOL_AFTER_ROLLUPS)
    args = parser.parse_args()
    memory.tune()  # as the CLI does
    id_store.unstage = _timed_unstage  # type: ignore[assignment]
    asyncio.run(_build(args.dir, args.pool_after))


if __name__ == "__main__":  # the workers are spawned: they import this module, not run it
    main()
