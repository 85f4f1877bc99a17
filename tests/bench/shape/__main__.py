"""``python -m tests.bench.shape generate|measure``: see :mod:`tests.bench.shape`.

generate  write the archive of ``--calls`` calls under ``--dir`` (local: DIR/archive;
          s3: a SeaweedFS of its own with its data in DIR/seaweed, bucket ``bench``,
          prefix ``shape``), then print what it wrote and how long it took; the shape
          is kept in DIR/shape.json for ``measure``.
measure   the legs named by ``--legs`` over that archive (tests/bench/shape/legs.py),
          each command a measured subprocess (wall, CPU, peak RSS); results in
          DIR/results-<time>.json and printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from archiver.settings import StorageSettings
from archiver.storage import open_store
from tests.support.shape.generate import generate
from tests.support.shape.plan import Shape

PREFIX = "shape"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.shape", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write the archive")
    g.add_argument("--calls", type=int, required=True)
    g.add_argument("--dir", type=Path, required=True, help="where the archive goes (kept)")
    g.add_argument("--storage", choices=["local", "s3"], default="local")
    g.add_argument("--per-day", type=int, default=10_000)
    g.add_argument("--legacy", type=int, help="calls of the pre-v2 archiver (default 0.2%%)")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--concurrency", type=int, default=32)
    g.add_argument(
        "--head-every",
        type=int,
        help="move each writer's head every N links (default: 1 on s3, as run does; 64 on a "
        "local folder, where each move is a locked, fsynced file; the last link always)",
    )
    m = sub.add_parser("measure", help="measure what reads the archive")
    m.add_argument("--dir", type=Path, required=True)
    m.add_argument("--legs", default="index,search,get,verify-day,verify,reconcile")
    m.add_argument("--label", default="", help="a name for this measurement")
    m.add_argument(
        "--code",
        default="HEAD",
        help="the archiver measured: a commit (its archiver/ exported under DIR), or tree",
    )
    return p.parse_args(argv)


async def _generate(
    settings: StorageSettings, shape: Shape, concurrency: int, head_every: int
) -> dict[str, Any]:
    async with open_store(settings, max_connections=concurrency + 8) as store:
        tally = await generate(store, shape, concurrency, head_every)
    return tally.summary()


def run_generate(args: argparse.Namespace) -> dict[str, Any]:
    """Write the archive; what was written."""
    shape = Shape(args.calls, per_day=args.per_day, seed=args.seed, legacy=args.legacy)
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.storage == "local":
        archive = args.dir / "archive"
        if archive.exists():
            shutil.rmtree(archive)
        local = StorageSettings(url=str(archive))
        summary = asyncio.run(_generate(local, shape, args.concurrency, args.head_every or 64))
    else:
        from tests.bench.shape.legs import seaweed_storage

        with seaweed_storage(args.dir, fresh=True) as (settings, _env):
            summary = asyncio.run(
                _generate(settings, shape, args.concurrency, args.head_every or 1)
            )
    info = {"storage": args.storage, "shape": asdict(shape), "generated": summary}
    (args.dir / "shape.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "generate":
        print(json.dumps(run_generate(args)))
        return 0
    from tests.bench.shape.legs import run_measure

    print(json.dumps(run_measure(args.dir, args.legs.split(","), args.label, args.code)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
