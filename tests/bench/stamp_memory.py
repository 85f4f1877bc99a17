"""The memory of verify's timestamp check against the number of tokens (issue 25).

``python -m tests.bench.stamp_memory [--links 100000] [--dir DIR]``

Writes, in a local folder, one writer's ``<seq>.tsr`` files for LINKS links (941
random bytes each, a real token's size), then runs
:func:`archiver.retrieval.stamp_audit.audit_stamps` over them in-process with the
token's cryptographic check replaced by a stand-in that accepts (its cost is per
token and its memory constant: ``docs/compliance.md`` gives it, 1.1 ms a token), and
prints one JSON line: the peak of Python's allocations (``tracemalloc``) during the
check, the process's high-water mark (``VmHWM``), the wall time. Run it with the
archiver of two commits (``PYTHONPATH``) to compare them; a token a link is the
service's shape with timestamps on (1.2 million tokens at 5 million calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archiver.retrieval import stamp_audit
from archiver.retrieval.chain_audit import ChainAudit
from archiver.retrieval.link_table import LinkTable
from archiver.retrieval.scratch import open_scratch
from archiver.storage.layout import stamp_key
from archiver.storage.local import LocalStore
from archiver.timestamping import Timestamp

WRITER = "w0123456789abcdef"


def _write(root: Path, links: int) -> None:
    folder = root / stamp_key(WRITER, 1).rpartition("/")[0]
    folder.mkdir(parents=True, exist_ok=True)
    if len(os.listdir(folder)) == links:
        return
    for seq in range(1, links + 1):
        (root / stamp_key(WRITER, seq)).write_bytes(os.urandom(941))


def _accept(token: bytes, digest: bytes, anchors: Any, *, nonce: int | None = None) -> Timestamp:
    return Timestamp(token=token, gen_time=datetime(2026, 1, 1, tzinfo=UTC), serial_number=1,
                     tsa="CN=bench")  # fmt: skip


def _hwm_mib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


async def _measure(root: Path, links: int) -> dict[str, Any]:
    with open_scratch(None, "bench") as db:  # as verify's: its links on the scratch file
        return await _measure_on(root, links, LinkTable(db))


async def _measure_on(root: Path, links: int, table: LinkTable) -> dict[str, Any]:
    chains = ChainAudit(links=table)
    chains.state.walks[WRITER] = {seq: f"{seq:064x}" for seq in range(1, links + 1)}
    stamp_audit.verify_token_digest = _accept  # type: ignore[assignment]
    store = LocalStore(root)
    tracemalloc.start()
    start = time.perf_counter()
    report = await stamp_audit.audit_stamps(store, chains, [], {})
    wall = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if report.checked != links or report.problems:
        raise SystemExit(f"checked {report.checked} of {links}: {report.problems[:3]}")
    return {"links": links, "checked": report.checked, "wall_s": round(wall, 1),
            "peak_traced_mib": round(peak / 2**20, 1), "hwm_mib": _hwm_mib(),
            "code": stamp_audit.__file__}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/archiver-stamp-bench"))
    args = parser.parse_args()
    _write(args.dir, args.links)
    print(json.dumps(asyncio.run(_measure(args.dir, args.links))))


if __name__ == "__main__":
    main()
