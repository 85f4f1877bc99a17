"""PUT loops without the archiver's download: the storage's ingest limit from Python.

N in-memory objects of one size, PUT by ``--concurrency`` workers sharing one
client. Two shapes:

- ``bare``: ``put_object(Bucket, Key, Body)`` on an aiobotocore client with its
  defaults (which add a CRC32 checksum, and sign the payload on plain http).
- ``archiver``, ``archiver-full``: the archiver's own :class:`~archiver.storage.s3.S3Store`
  ``put_bytes`` (SHA-256 computed here as the transfer does while streaming,
  sent as the checksum the storage verifies, conditional write, metadata), on
  the client the archiver opens. The archiver minus the download, the listing
  and the state: what its storage path costs by itself. ``archiver`` takes the
  lean PutObject (storage/s3_lean.py), ``archiver-full`` the full client only.

``--loop uvloop`` runs the loop on uvloop (where installed); botocore's CRT
extras (awscrt) are used where installed unless BOTO_DISABLE_CRT=true.

Run as a process of its own, like the archiver, so both pay the same start-up.
Credentials come from the standard AWS variables. Prints one JSON line.

    python -m tests.bench.bare_put --endpoint URL --bucket B --prefix P/ \
        --count 2000 --size 524288 --concurrency 16 [--shape archiver]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from archiver.settings import StorageSettings
from archiver.storage.s3 import S3Store

Put = Callable[[str, bytes], Awaitable[None]]


async def _workers(put: Put, args: argparse.Namespace) -> float:
    # One body for every key: SeaweedFS does not deduplicate, and making each
    # object different would add a copy the archiver does not make.
    body = os.urandom(args.size)
    keys = iter(range(args.count))
    started = time.monotonic()

    async def worker() -> None:
        for i in keys:
            await put(f"{args.prefix}{i:07d}", body)

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return time.monotonic() - started


async def bare(args: argparse.Namespace) -> float:
    config = AioConfig(s3={"addressing_style": "path"}, max_pool_connections=args.concurrency)
    async with get_session().create_client(
        "s3", endpoint_url=args.endpoint, config=config
    ) as client:

        async def put(key: str, body: bytes) -> None:
            await client.put_object(Bucket=args.bucket, Key=key, Body=body)

        return await _workers(put, args)


async def shaped(args: argparse.Namespace) -> float:
    settings = StorageSettings(
        url=f"s3://{args.bucket}",
        endpoint_url=args.endpoint,
        addressing_style="path",
        lean_put=args.shape == "archiver",
    )
    # As the archiver opens it: a pool of twice the concurrency (runtime.open_runtime).
    async with S3Store(settings, max_connections=args.concurrency * 2) as store:

        async def put(key: str, body: bytes) -> None:
            sha = hashlib.sha256(body).hexdigest()
            await store.put_bytes(key, body, sha256=sha, content_type="audio/wav")

        return await _workers(put, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--shape", choices=("bare", "archiver", "archiver-full"), default="bare")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    loop = bare if args.shape == "bare" else shaped
    if args.loop == "uvloop":
        import uvloop  # the bench's own extra: measured, not a dependency of the archiver

        elapsed = uvloop.run(loop(args))
    else:
        elapsed = asyncio.run(loop(args))
    print(json.dumps({"count": args.count, "size": args.size, "elapsed": elapsed}), flush=True)


if __name__ == "__main__":
    main()
