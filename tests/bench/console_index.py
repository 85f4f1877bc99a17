"""The console's index at scale: a million manifest lines, built, updated and searched.

``python -m tests.bench.console_index --calls N --dir PATH`` writes a local
archive's manifests (N lines of the real ``ManifestEntry.build`` of realistic CDRs,
the state leg's, in batches of 1,000 per local date, named as
``flush_manifest`` names them; no recordings, the index never reads them),
then times, in process, on a fresh index file:

- the build: ``CallIndex.refresh`` from empty (list, read, parse, insert), its
  lines prepared in its own process, or with ``--workers N`` in N worker
  processes past the first 50,000 (``ARCHIVER_CONSOLE__INDEX_WORKERS``);
- an incremental update: one new manifest object of 1,000 lines, then one
  refresh with nothing new (the daemon's idle look);
- searches as the console's form sends them (each 30 times with different
  values, newest-first page of 50 plus the capped count): a phone number in
  another spelling, an extension, an agent's name, one local day, an id, a
  direction, everything (no criterion).

Prints one JSON line and a short table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import random
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from archiver.console.index import CallIndex, CallQuery
from archiver.console.tables import SCHEMA
from archiver.index_db import IndexDatabase
from archiver.manifest.entry import ManifestEntry
from archiver.settings import StorageSettings
from archiver.storage import open_store
from archiver.storage.base import ObjectProof
from archiver.storage.layout import manifest_date
from archiver.storage.layout import manifest_key as manifest_batch_key
from tests.bench.state_scale import pages

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
BATCH = 1000
REPEATS = 30


def write_manifests(
    root: Path, calls: int, first_batch: int = 1, skip: int = 0
) -> list[dict[str, Any]]:
    """Write ``calls`` manifest lines under ``root`` (after the first ``skip`` CDRs)."""
    archived_at = datetime(2021, 2, 1, tzinfo=UTC)
    entries: list[dict[str, Any]] = []
    lines: list[str] = []
    day = ""
    batch = first_batch
    count = 0

    def flush() -> None:
        nonlocal batch, lines
        path = root / manifest_batch_key(day, batch, "bench0000001")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines), encoding="utf-8")
        batch += 1
        lines = []

    seen = 0
    for page in pages((calls + skip) * 2):
        for call in page:
            if not call.recording_url:
                continue
            seen += 1
            if seen <= skip:
                continue
            if count == calls:
                break
            this_day = manifest_date(call, TZ)
            if lines and (this_day != day or len(lines) == BATCH):
                flush()
            day = this_day
            key = f"recordings/{call.started_at:%Y/%m/%d}/{call.sip_call_id}.wav"
            # Hashes and the proof S3 returns, as random as real ones (they are most of
            # what a packed line cannot shrink).
            digest = hashlib.sha256(count.to_bytes(8, "big")).digest()
            proof = ObjectProof(
                etag=hashlib.md5(digest).hexdigest(),  # noqa: S324 - an ETag's shape
                checksum_sha256=base64.b64encode(digest).decode(),
                checksum_type="FULL_OBJECT",
            )
            entry = ManifestEntry.build(
                call,
                proof=proof,
                object_key=key,
                sha256=digest.hex(),
                size=16_000 * (call.billsec or 1),
                content_type="audio/wav",
                archived_at=archived_at,
            )
            lines.append(entry.to_line() + "\n")
            if count % 997 == 0:
                entries.append(dict(entry.fields))
            count += 1
        if count == calls:
            break
    if lines:
        flush()
    return entries


def _children_cpu() -> float:
    """CPU seconds of the child processes ended so far (a build's workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def queries(samples: list[dict[str, Any]], rng: random.Random) -> dict[str, list[CallQuery]]:
    """The searches timed, ``REPEATS`` of each kind with values from the archive."""
    picks = [rng.choice(samples) for _ in range(REPEATS)]

    def spelled(number: str) -> str:
        return "+84 " + number[1:] if number.startswith("0") else number

    def day(entry: dict[str, Any]) -> tuple[datetime, datetime]:
        local = datetime.fromisoformat(entry["call_started_at"]).astimezone(TZ)
        start = datetime(local.year, local.month, local.day, tzinfo=TZ)
        return start, start + timedelta(days=1)

    return {
        "phone": [
            CallQuery(phone=spelled(e["from_number"] or e["to_number"] or "0")) for e in picks
        ],
        "extension": [CallQuery(extension=str(e["extension"] or "100")) for e in picks],
        "agent": [CallQuery(agent=str(e["agent_name"] or e["agent"] or "x")) for e in picks],
        "day": [CallQuery(since=day(e)[0], until=day(e)[1]) for e in picks],
        "id": [
            CallQuery(ident=e["sip_call_id"] if i % 2 else e["cdr_id"]) for i, e in enumerate(picks)
        ],
        "direction": [CallQuery(direction=rng.choice(["inbound", "outbound"])) for _ in picks],
        "everything": [CallQuery() for _ in picks],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(args.dir)
    archive = root / "archive"
    result: dict[str, Any] = {"calls": args.calls}
    started = time.perf_counter()
    samples = write_manifests(archive, args.calls)
    result["write_manifests_s"] = round(time.perf_counter() - started, 1)
    storage = StorageSettings(url=str(archive))
    db_path = root / "console.sqlite3"
    async with open_store(storage) as store:
        db = IndexDatabase.fresh(db_path, SCHEMA)
        index = CallIndex(db, workers=args.workers)
        started, cpu, workers = time.perf_counter(), time.process_time(), _children_cpu()
        built = await index.refresh(store)
        result["build_s"] = round(time.perf_counter() - started, 1)
        # CPU of every thread of the process (SQLite writes in its own) and of the worker
        # processes that prepared lines: what decides on a busy machine, where the wall
        # time is the share the scheduler gave.
        result["build_cpu_s"] = round(time.process_time() - cpu, 1)
        result["build_workers_cpu_s"] = round(_children_cpu() - workers, 1)
        result["manifests"] = built.manifests
        result["indexed"] = await index.count()
        result["index_mib"] = round(db_path.stat().st_size / 2**20)
        write_manifests(archive, BATCH, first_batch=10**9, skip=args.calls)
        started = time.perf_counter()
        update = await index.refresh(store)
        result["update_1000_lines_s"] = round(time.perf_counter() - started, 2)
        result["update_lines"] = update.lines
        started = time.perf_counter()
        await index.refresh(store)
        result["refresh_nothing_new_s"] = round(time.perf_counter() - started, 2)
        rng = random.Random(5)
        searches: dict[str, Any] = {}
        for kind, asked in queries(samples, rng).items():
            times = []
            found = []
            for query in asked:
                t0 = time.perf_counter()
                _, total = await index.search(query, 0, 50)
                times.append(time.perf_counter() - t0)
                found.append(total)
            searches[kind] = {**_stats(times), "median_matches": statistics.median(found)}
        result["search"] = searches
        db.close()
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.console_index", description=__doc__)
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--dir", required=True, help="an empty directory for the archive and index")
    p.add_argument("--workers", type=int, default=0, help="processes preparing the build's lines")
    args = p.parse_args(argv)
    result = asyncio.run(run(args))
    print(json.dumps(result))
    for kind, row in result["search"].items():
        times = f"p50 {row['p50_ms']:>8} ms  p95 {row['p95_ms']:>8} ms  max {row['max_ms']:>8} ms"
        print(f"  {kind:<11} {times}  matches {row['median_matches']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
