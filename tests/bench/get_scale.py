"""``archiver get`` from storage alone, against an archive of a million manifest entries.

``python -m tests.bench.get_scale --endpoint URL --bucket B --prefix P --calls N``
builds the archive under ``s3://B/P`` the way the archiver lays it out, without
transferring a million recordings:

- every manifest object: N lines (the real ``ManifestEntry.build`` of realistic
  CDRs, as in the state leg) in batches of 1,000 per local date, under
  ``manifests/date=D/<batch>-<run>.jsonl``, exactly as ``flush_manifest`` names them;
- the id index (``_archiver/ids/<hh>/<id>/...``, bodies from the archiver's own
  ``pointer_body``) complete for ``--shards`` of its 256 shards: every pointer
  of the N calls whose id hashes there (about N x 2 / 256 per shard). A lookup
  lists one id's folder inside one shard, so the probed ids are taken from
  those shards, and their lookups see what they would in a full archive
  (SeaweedFS lists a folder by its own entries; S3 lists a prefix by range),
  while the build stays within minutes;
- the probed calls' recordings (small, real bytes).

It prints one JSON line: the probes, and the in-process lookup time of each
(``resolve``: LIST + pointer GET + manifest GET and check). The harness then
times ``archiver get ID --url`` and ``archiver get ID -o DIR`` as commands.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from archiver.manifest.entry import ManifestEntry
from archiver.manifest.layout import manifest_date
from archiver.manifest.layout import manifest_key as manifest_batch_key
from archiver.retrieval.index import id_prefix, pointer_body, pointer_keys, resolve
from archiver.settings import DEFAULT_KEY_TEMPLATE, StorageSettings
from archiver.storage.base import ObjectProof
from archiver.storage.keys import render_key
from archiver.storage.s3 import S3Store
from tests.bench import measure, servers
from tests.bench.measure import MIB
from tests.bench.state_scale import pages
from tests.seaweed import SeaweedServer
from tests.support.cli import cli_env

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
RUN_ID = "bench0000001"
BATCH = 1000
RECORDING = b"RIFF" + os.urandom(16 * 1024)


def _shard(ident: str) -> str:
    return id_prefix(ident).split("/")[2]


async def build(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(9)
    shards = {f"{i:02x}" for i in rng.sample(range(256), args.shards)}
    prefix = args.prefix.strip("/") + "/"
    archived_at = datetime(2021, 2, 1, tzinfo=UTC)
    recording_sha = hashlib.sha256(RECORDING).hexdigest()
    pointers: list[tuple[str, bytes]] = []
    probes: list[dict[str, str]] = []
    manifests = batches = 0
    started = time.monotonic()

    async def batches_of_lines() -> AsyncIterator[tuple[str, bytes, list[dict[str, Any]]]]:
        nonlocal batches
        day = ""
        lines: list[str] = []
        entries: list[dict[str, Any]] = []
        count = 0
        # Calls without a recording have no manifest line: draw more CDRs than lines.
        for page in pages(args.calls * 2):
            for call in page:
                if not call.recording_url:
                    continue
                if count == args.calls:
                    break
                count += 1
                this_day = manifest_date(call, TZ)
                if lines and (this_day != day or len(lines) == BATCH):
                    batches += 1
                    yield manifest_batch_key(day, batches, RUN_ID), "".join(lines).encode(), entries
                    lines, entries = [], []
                day = this_day
                key = render_key(DEFAULT_KEY_TEMPLATE, call, "wav", TZ)
                # Probes spread over the range, half by sip_call_id, half by cdr id,
                # each in one of the complete shards.
                by = "cdr_id" if len(probes) % 2 else "sip_call_id"
                probe = (
                    len(probes) < args.probes
                    and count >= len(probes) * args.calls // args.probes
                    and _shard(getattr(call, by)) in shards
                )
                entry = ManifestEntry.build(
                    call,
                    proof=ObjectProof(),
                    object_key=prefix + key,
                    sha256=recording_sha if probe else hashlib.sha256(key.encode()).hexdigest(),
                    size=len(RECORDING) if probe else 16_000 * (call.billsec or 1),
                    content_type="audio/wav",
                    archived_at=archived_at,
                )
                if probe:
                    probes.append({"id": getattr(entry, by), "by": by, "key": key})
                lines.append(entry.to_line() + "\n")
                entries.append(entry)
            if count == args.calls:
                break
        if lines:
            batches += 1
            yield manifest_batch_key(day, batches, RUN_ID), "".join(lines).encode(), entries

    config = AioConfig(s3={"addressing_style": "path"}, max_pool_connections=32)
    async with get_session().create_client(
        "s3", endpoint_url=args.endpoint, config=config
    ) as client:
        queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=64)

        async def uploader() -> None:
            while (item := await queue.get()) is not None:
                await client.put_object(Bucket=args.bucket, Key=prefix + item[0], Body=item[1])

        workers = [asyncio.create_task(uploader()) for _ in range(16)]
        async for key, content, entries in batches_of_lines():
            manifests += 1
            await queue.put((key, content))
            for entry in entries:
                call = entry.with_manifest(key)
                for pointer in pointer_keys(call):
                    if pointer.split("/")[2] in shards:
                        pointers.append((pointer, pointer_body(call)))
        manifests_done = time.monotonic()
        for item in pointers:
            await queue.put(item)
        for probe in probes:
            await queue.put((probe["key"], RECORDING))
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    built = time.monotonic()

    settings = StorageSettings(
        url=f"s3://{args.bucket}/{prefix}", endpoint_url=args.endpoint, addressing_style="path"
    )
    lookups = []
    async with S3Store(settings, max_connections=4) as store:
        for probe in probes:
            t0 = time.perf_counter()
            call = await resolve(store, probe["id"])
            lookups.append(time.perf_counter() - t0)
            assert call.object_key == prefix + probe["key"], (call.object_key, probe)
    return {
        "manifest_entries": args.calls,
        "manifest_objects": manifests,
        "shards_complete": sorted(shards),
        "pointers_written": len(pointers),
        "build_manifests_s": manifests_done - started,
        "build_s": built - started,
        "probes": probes,
        "resolve_s": lookups,
    }


def run(
    server: SeaweedServer, workdir: Path, n: int, shards: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Build the archive (a measured subprocess), then time ``archiver get`` on each probe."""
    prefix = "getscale"
    build_cmd = [
        sys.executable, "-m", "tests.bench.get_scale", "--endpoint", server.endpoint_url,
        "--bucket", servers.BUCKET, "--prefix", prefix, "--calls", str(n),
        "--shards", str(shards),
    ]  # fmt: skip
    built = measure.run(
        "get-build", build_cmd, env=servers.bare_env(server), cwd=workdir, timeout=1800
    ).check()
    out: dict[str, Any] = json.loads(built.stdout.strip().splitlines()[-1])
    out["build_process"] = {"wall_s": built.wall, "peak_rss_mib": built.peak_rss / MIB}
    env = cli_env({**servers.storage_env(server, prefix), "ARCHIVER_OPERATOR": "bench"})
    got = workdir / "got"
    got.mkdir(exist_ok=True)
    url_walls, get_walls = [], []
    for i, probe in enumerate(out["probes"]):
        archiver = [sys.executable, "-m", "archiver", "get", probe["id"]]
        url = measure.run(f"get-url-{i}", [*archiver, "--url"], env=env, cwd=workdir, timeout=120)
        url_walls.append(url.check().wall)
        fetched = measure.run(
            f"get-o-{i}", [*archiver, "-o", str(got)], env=env, cwd=workdir, timeout=120
        )
        get_walls.append(fetched.check().wall)
    out["get_url_walls_s"] = url_walls
    out["get_file_walls_s"] = get_walls
    out["get_url_wall_s"] = measure.median(url_walls)
    out["get_file_wall_s"] = measure.median(get_walls)
    out["cli_startup_s"] = measure.cli_startup_s(env, workdir)
    out["resolve_median_s"] = measure.median(out["resolve_s"])
    log(
        f"  get: {n} manifest entries ({out['manifest_objects']} manifest objects, "
        f"{out['pointers_written']} pointers in {len(out['shards_complete'])} complete shards, "
        f"built in {out['build_s']:.0f}s); lookup in-process {out['resolve_median_s']:.3f}s, "
        f"`archiver get --url` {out['get_url_wall_s']:.2f}s, `get -o` "
        f"{out['get_file_wall_s']:.2f}s (CLI start-up alone {out['cli_startup_s']:.2f}s)"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--probes", type=int, default=6)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(build(args))), flush=True)


if __name__ == "__main__":
    main()
