"""``archiver verify`` (no ``--deep``) over a large archive: requests per object, wall time.

``python -m tests.bench.verify_scale --calls N --storage s3|local [--size BYTES]
[--sample N|P% ...] [--days D --batch B]``

Builds an archive of N recordings (``--size`` random bytes each, a WAV
header in front) through the archiver's own store, so every line carries the
proof a real write records: each recording written with its SHA-256 checksum,
the manifest in batches of 1,000 lines with their chain links and head, and
the id index (two pointers per recording). ``s3`` starts a throwaway SeaweedFS
on loopback; ``local`` writes into a temporary directory. Then it runs the
default verify in-process, counting every S3 request by operation (botocore's
``before-send`` event), and prints one JSON line: the build time, verify's wall
time, its requests by operation and per object, and what it proved. Each
``--sample`` adds a sampled verify of the same archive (``verify --sample``,
seed ``bench``) after the full one: its wall time, requests and sample line.
``--days D`` spreads the calls evenly over D days (each batch in its day's
partition) and adds a verify of the middle day (``--since/--until``);
``--batch B`` writes B lines per manifest object (the service's shape: about
4; a backfill's: 1,000). ``--rollup`` runs ``archiver rollup``'s writer
(:class:`~archiver.manifest.rollup_write.RollupWriter`) over the archive before
verifying, and reports its wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.manifest.chain import next_link, sha256_hex
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import list_manifests
from archiver.manifest.rollup_write import RollupWriter
from archiver.manifest.writer import advance_head
from archiver.models import CallRecord, Provider
from archiver.retrieval.index import pointer_body, pointer_keys
from archiver.retrieval.sampling import Sample
from archiver.retrieval.verify import verify_archive
from archiver.settings import StorageSettings
from archiver.storage import LocalStore, ObjectProof, ObjectStore, open_store
from archiver.storage.layout import manifest_key
from tests.support.seaweed import SeaweedProcess, admin_client

BATCH = [1000]  # lines per manifest object (--batch)
WRITER = "wbench00000000001"
START = datetime(2021, 2, 17, 1, 0, tzinfo=UTC)


SPACING = [1.0]  # seconds between two calls' starts (--days sets it)


def _call(n: int) -> CallRecord:
    return CallRecord(
        provider=Provider.CDR_V2,
        cdr_id=f"cdr-{n:08d}",
        sip_call_id=f"{n:08d}-bench@pbx.example.vn",
        started_at=START + timedelta(seconds=n * SPACING[0]),
    )


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def _put(store: ObjectStore, key: str, data: bytes) -> ObjectProof:
    """The archiver's own write on S3 (its proof); a plain file write in a directory
    (no fsync: building 300,000 files durably would take most of the run)."""
    if isinstance(store, LocalStore):
        await asyncio.to_thread(_write_file, store.root / key, data)
        return ObjectProof()
    digest = hashlib.sha256(data).hexdigest()
    return (await store.put_bytes(key, data, sha256=digest, content_type="x/y")).proof


async def _recording(store: ObjectStore, n: int, size: int) -> ManifestEntry:
    data = b"RIFF" + os.urandom(size - 4)
    digest = hashlib.sha256(data).hexdigest()
    key = f"recordings/{_call(n).started_at:%Y/%m/%d}/{n:08d}-bench.wav"
    proof = await _put(store, key, data)
    return ManifestEntry.build(
        _call(n),
        object_key=store.full_key(key),
        sha256=digest,
        size=size,
        content_type="audio/wav",
        archived_at=START + timedelta(days=1),
        proof=proof,
    )


async def build(store: ObjectStore, calls: int, size: int, concurrency: int = 32) -> int:
    """Write the archive; returns the number of manifest objects."""
    previous: tuple[int, str] | None = None
    manifests = 0
    semaphore = asyncio.Semaphore(concurrency)

    async def one(n: int) -> ManifestEntry:
        async with semaphore:
            return await _recording(store, n, size)

    for first in range(0, calls, BATCH[0]):
        last = min(first + BATCH[0], calls)
        entries = await asyncio.gather(*(one(n) for n in range(first, last)))
        manifests += 1
        key = manifest_key(f"{_call(first).started_at:%Y-%m-%d}", manifests, WRITER)
        content = "".join(e.to_line() + "\n" for e in entries).encode()
        await store.put_bytes(
            key, content, sha256=sha256_hex(content), content_type="application/x-ndjson"
        )
        pointers = [
            (pointer, pointer_body(line))
            for line in (e.with_manifest(key) for e in entries)
            for pointer in pointer_keys(line)
        ]

        async def pointer(item: tuple[str, bytes]) -> None:
            async with semaphore:
                await _put(store, *item)

        await asyncio.gather(*(pointer(item) for item in pointers))
        link = next_link(WRITER, manifests, key, content, len(entries), previous)
        data = link.to_bytes()
        await store.put_bytes(link.key, data, sha256=sha256_hex(data), content_type="x")
        previous = (link.seq, sha256_hex(data))
        await advance_head(store, data)
    return manifests


async def _verify(
    settings: StorageSettings, sample: Sample | None, day: datetime | None = None
) -> tuple[Any, float, Counter[str]]:
    requests: Counter[str] = Counter()
    async with open_store(settings, max_connections=24) as store:
        client = getattr(store, "client", None)
        if client is not None:

            def count(model: Any, **_: Any) -> None:
                requests[model.name] += 1

            client.meta.events.register("before-call.s3.*", count)
        t0 = time.monotonic()
        until = day + timedelta(days=1) if day is not None else None
        listed = await list_manifests(store, day, until, UTC)
        report = await verify_archive(
            store, listed, since=day, until=until, tz=UTC, concurrency=16, sample=sample
        )
        wall = time.monotonic() - t0
    assert report.ok, [p.line() for p in report.problems[:5]]
    return report, wall, requests


async def measure(
    settings: StorageSettings,
    calls: int,
    size: int,
    samples: list[str] | None = None,
    days: int = 1,
    rollup: bool = False,
) -> dict[str, Any]:
    rolled: dict[str, Any] = {}
    async with open_store(settings, max_connections=64) as store:
        t0 = time.monotonic()
        manifests = await build(store, calls, size)
        built = time.monotonic() - t0
        if rollup:
            t0 = time.monotonic()
            done = await RollupWriter(store, WRITER, now=lambda: datetime.now(UTC)).run()
            rolled = {"rollups": len(done.records), "wall_s": round(time.monotonic() - t0, 1)}
    report, wall, requests = await _verify(settings, None)
    sampled = []
    for spec in samples or []:
        sample = Sample.parse(spec, "bench")
        part, part_wall, part_requests = await _verify(settings, sample)
        sampled.append(
            {
                "sample": spec,
                "wall_s": round(part_wall, 1),
                "requests": dict(part_requests),
                "requests_total": sum(part_requests.values()),
                "line": sample.line(part.checked, part.entries, sample.bad(part.problems)),
            }
        )
    one_day: dict[str, Any] = {}
    if days > 1:
        day = START.replace(hour=0) + timedelta(days=days // 2)
        part, part_wall, part_requests = await _verify(settings, None, day)
        one_day = {
            "day": f"{day:%Y-%m-%d}",
            "wall_s": round(part_wall, 1),
            "checked": part.checked,
            "manifests_read": part.manifests_read,
            "requests": dict(part_requests),
            "requests_total": sum(part_requests.values()),
        }
    total = sum(requests.values())
    return {
        "rollup": rolled,
        "one_day": one_day,
        "sampled": sampled,
        "storage": "s3" if settings.is_s3 else "local",
        "recordings": calls,
        "recording_bytes": size,
        "manifest_objects": manifests,
        "build_s": round(built, 1),
        "verify_wall_s": round(wall, 1),
        "objects_per_s": round(calls / wall),
        "requests": dict(requests),
        "requests_total": total,
        "requests_per_object": round(total / calls, 3) if total else None,
        "by_checksum": report.by_checksum,
        "rehashed": report.rehashed,
        "mib_read": round(report.bytes_read / 1024**2, 1),
        "pointers_checked": report.pointers,
        "summary": report.summary(),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="verify-bench-") as tmp:
        if args.storage == "local":
            return await measure(
                StorageSettings(url=str(Path(tmp) / "archive")),
                args.calls,
                args.size,
                args.sample,
                args.days,
                args.rollup,
            )
        process = SeaweedProcess(Path(tmp))
        server = process.start()
        try:
            async with admin_client(server) as client:
                await client.create_bucket(Bucket="bench")
            for name, value in (
                ("AWS_ACCESS_KEY_ID", server.access_key),
                ("AWS_SECRET_ACCESS_KEY", server.secret_key),
                ("AWS_DEFAULT_REGION", server.region),
            ):
                os.environ[name] = value
            settings = StorageSettings(
                url="s3://bench/verify", endpoint_url=server.endpoint_url, addressing_style="path"
            )
            return await measure(
                settings, args.calls, args.size, args.sample, args.days, args.rollup
            )
        finally:
            process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--storage", choices=["s3", "local"], required=True)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--sample", action="append", help="also a sampled verify (repeatable)")
    parser.add_argument("--days", type=int, default=1, help="days the calls spread over")
    parser.add_argument("--batch", type=int, default=1000, help="lines per manifest object")
    parser.add_argument("--rollup", action="store_true", help="roll the archive up first")
    args = parser.parse_args()
    BATCH[0] = args.batch
    SPACING[0] = args.days * 86400 / max(args.calls, 1)
    print(json.dumps(asyncio.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
