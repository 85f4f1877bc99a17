"""``archiver get`` from storage alone, against an archive of a million manifest entries.

``python -m tests.bench.get_scale --endpoint URL --bucket B --prefix P --calls N``
builds the archive under ``s3://B/P`` the way the archiver lays it out, without
transferring a million recordings:

- every manifest object: N lines (the real ``ManifestEntry.build`` of realistic
  CDRs, as in the state leg) in batches of 1,000 per local date, under
  ``manifests/date=D/<batch>-<run>.jsonl``, exactly as ``flush_manifest`` names them;
- no id-index pointers: ``get`` finds calls in the local index of the manifests
  (:mod:`archiver.commands.finding`), which it builds from the manifests;
- each manifest object's chain link, and the chain's head;
- the probed calls' recordings (small, real bytes).

It prints one JSON line: the probes, and the in-process lookup time of each
(``find_call``: the first one cold, building the local index from nothing;
the others warm: a listing of ``manifests/``, a SELECT, the manifest GET and
check). The harness then times ``archiver get ID --url`` and ``archiver get
ID -o DIR`` as commands, the first one cold (no index file) and the others warm.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from archiver.commands.finding import find_call
from archiver.manifest.chain import Head, next_link, sha256_hex
from archiver.manifest.entry import ManifestEntry
from archiver.settings import DEFAULT_KEY_TEMPLATE, StorageSettings
from archiver.storage.base import ObjectProof
from archiver.storage.keys import render_key
from archiver.storage.layout import head_key, manifest_date
from archiver.storage.layout import manifest_key as manifest_batch_key
from archiver.storage.s3 import S3Store
from tests.bench import measure, servers
from tests.bench.measure import MIB
from tests.bench.state_scale import pages
from tests.support.cli import cli_env
from tests.support.seaweed import SeaweedServer

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
RUN_ID = "bench0000001"
BATCH = 1000
RECORDING = b"RIFF" + os.urandom(16 * 1024)


async def build(args: argparse.Namespace) -> dict[str, Any]:
    prefix = args.prefix.strip("/") + "/"
    archived_at = datetime(2021, 2, 1, tzinfo=UTC)
    recording_sha = hashlib.sha256(RECORDING).hexdigest()
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
                # Probes spread over the range, half by sip_call_id, half by cdr id.
                by = "cdr_id" if len(probes) % 2 else "sip_call_id"
                probe = (
                    len(probes) < args.probes and count >= len(probes) * args.calls // args.probes
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
        previous: tuple[int, str] | None = None
        link_bytes = b""
        async for key, content, entries in batches_of_lines():
            manifests += 1
            await queue.put((key, content))
            # Each manifest object in the chain, as flush_manifest links it (get checks it).
            link = next_link(RUN_ID, manifests, key, content, len(entries), previous)
            link_bytes = link.to_bytes()
            previous = (manifests, sha256_hex(link_bytes))
            await queue.put((link.key, link_bytes))
        await queue.put((head_key(RUN_ID), Head.of(link_bytes).to_bytes()))
        manifests_done = time.monotonic()
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
    index = Path(args.index)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    async with S3Store(settings, max_connections=4) as store:
        for probe in probes:
            t0 = time.perf_counter()
            call = await find_call(store, index, probe["id"])
            lookups.append(time.perf_counter() - t0)
            assert call.object_key == prefix + probe["key"], (call.object_key, probe)
    return {
        "manifest_entries": args.calls,
        "manifest_objects": manifests,
        "build_manifests_s": manifests_done - started,
        "build_s": built - started,
        "probes": probes,
        "resolve_cold_s": lookups[0],
        "resolve_s": lookups[1:],
    }


def run(server: SeaweedServer, workdir: Path, n: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Build the archive (a measured subprocess), then time ``archiver get`` on each probe:
    the first with no local index (cold), the others with it (warm)."""
    prefix = "getscale"
    build_cmd = [
        sys.executable, "-m", "tests.bench.get_scale", "--endpoint", server.endpoint_url,
        "--bucket", servers.BUCKET, "--prefix", prefix, "--calls", str(n),
        "--index", str(workdir / "inproc-index.sqlite3"),
    ]  # fmt: skip
    built = measure.run(
        "get-build", build_cmd, env=servers.bare_env(server), cwd=workdir, timeout=1800
    ).check()
    out: dict[str, Any] = json.loads(built.stdout.strip().splitlines()[-1])
    out["build_process"] = {"wall_s": built.wall, "peak_rss_mib": built.peak_rss / MIB}
    index = workdir / "get-index.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    env = cli_env(
        {
            **servers.storage_env(server, prefix),
            "ARCHIVER_OPERATOR": "bench",
            "ARCHIVER_CONSOLE__INDEX_PATH": str(index),
        }
    )
    got = workdir / "got"
    got.mkdir(exist_ok=True)
    url_walls, get_walls = [], []
    first = out["probes"][0]["id"]
    cold = measure.run(
        "get-cold", [sys.executable, "-m", "archiver", "get", first, "--url"], env=env,
        cwd=workdir, timeout=3600,
    ).check()  # fmt: skip
    out["get_cold_wall_s"] = cold.wall
    out["get_cold_peak_rss_mib"] = cold.peak_rss / MIB
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
    out["cli_startup_s"] = measure.cli_startup_s(env, workdir, "get")
    out["resolve_median_s"] = measure.median(out["resolve_s"])
    log(
        f"  get: {n} manifest entries ({out['manifest_objects']} manifest objects, "
        f"built in {out['build_s']:.0f}s); cold `archiver get --url` (local index built) "
        f"{out['get_cold_wall_s']:.1f}s; warm: lookup in-process "
        f"{out['resolve_median_s']:.3f}s, `archiver get --url` {out['get_url_wall_s']:.2f}s, "
        f"`get -o` "
        f"{out['get_file_wall_s']:.2f}s (CLI start-up alone {out['cli_startup_s']:.2f}s)"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--index", required=True, help="the local index file (removed first)")
    parser.add_argument("--probes", type=int, default=6)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(build(args))), flush=True)


if __name__ == "__main__":
    main()
