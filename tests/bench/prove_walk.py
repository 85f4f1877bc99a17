"""The console's proof of an old call: its writer's chain walked back from the head.

``python -m tests.bench.prove_walk ARCHIVE [--index FILE]`` proves the oldest
manifest object of the writer with the most links, as the console's prover does
before a play (:class:`archiver.retrieval.proof.ChainProver`, kept links on the
index file ``FILE`` when this code's prover keeps them), then a second, newer
object of that writer with the same prover. Prints one JSON line: links, wall
seconds of each proof, and the process's peak RSS (``VmHWM``). Run it under the
code to measure with ``PYTHONPATH`` (``git archive COMMIT archiver | tar -x -C DIR``).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import time
from pathlib import Path
from typing import Any

from archiver.manifest.chain import Link
from archiver.retrieval.proof import ChainProver
from archiver.settings import StorageSettings
from archiver.storage import open_store


def _hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(archive: Path, index: Path) -> dict[str, Any]:
    chains = archive / "_archiver" / "chain"
    writers = [p for p in chains.iterdir() if p.is_dir() and not p.name.startswith("seal-")]
    writer = max(writers, key=lambda p: sum(1 for _ in p.glob("0*.json")))
    links = sorted(writer.glob("0*.json"))
    oldest = Link.from_bytes(links[0].read_bytes())
    newer = Link.from_bytes(links[len(links) // 2].read_bytes())
    out: dict[str, Any] = {"writer": writer.name, "links": len(links), "rss_before_mib": 0.0}
    async with open_store(StorageSettings(url=str(archive))) as store:
        if "keep" in inspect.signature(ChainProver).parameters:
            from archiver.retrieval.proven_links import KeptLinks  # noqa: PLC0415

            kept = KeptLinks(index)
            prover = ChainProver(store, kept, keep=kept.keep)
            out["keeps_links"] = True
        else:
            prover = ChainProver(store)
            out["keeps_links"] = False
        out["rss_before_mib"] = round(_hwm_mib(), 1)
        for name, link in (("oldest", oldest), ("middle", newer)):
            content = (archive / link.manifest_key).read_bytes()
            started = time.monotonic()
            await prover.prove(link.manifest_key, content)
            out[f"{name}_s"] = round(time.monotonic() - started, 2)
            out[f"{name}_hwm_mib"] = round(_hwm_mib(), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--index", type=Path, default=Path("prove-walk-index.sqlite3"))
    args = parser.parse_args()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{args.index}{suffix}").unlink(missing_ok=True)
    print(json.dumps(asyncio.run(measure(args.archive, args.index))))


if __name__ == "__main__":
    main()
