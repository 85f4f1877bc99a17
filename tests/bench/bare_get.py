"""The download alone: every recording of the bench's provider fetched and hashed.

What the archiver's transfer does before its PUT, and nothing else: aiohttp GETs
of the simulator's recordings (listed from its ``/recordings/`` page, as rclone
lists them), ``--concurrency`` at once on one session, each body read in the
pieces the socket delivered (as the transfer reads it), hashed with SHA-256 as
it arrives and joined once, as the transfer keeps a small recording for its
single PUT. ``--no-hash`` leaves the SHA-256 and the join out: what they cost is the difference.

Run as a process of its own, like the archiver. Prints one JSON line.

    python -m tests.bench.bare_get --base-url URL [--concurrency 16] [--loop uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import time

import aiohttp


async def fetch_all(args: argparse.Namespace) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"{args.base_url}/recordings/") as resp:
            names = re.findall(r'href="([^"]+)"', await resp.text())
        todo = iter(names)
        received = 0
        started = time.monotonic()

        async def worker() -> None:
            nonlocal received
            for name in todo:
                async with session.get(f"{args.base_url}/recordings/{name}") as resp:
                    resp.raise_for_status()
                    digest = hashlib.sha256()
                    chunks = []
                    async for chunk, _ in resp.content.iter_chunks():
                        if args.hash:
                            digest.update(chunk)
                        chunks.append(chunk)
                    body = b"".join(chunks) if args.hash else b""
                    digest.hexdigest()
                    received += len(body) if args.hash else sum(map(len, chunks))

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        return {"count": len(names), "bytes": received, "elapsed": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--no-hash", dest="hash", action="store_false")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415 - only where asked

        result = uvloop.run(fetch_all(args))
    else:
        result = asyncio.run(fetch_all(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
