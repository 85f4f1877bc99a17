"""How long a listing of ``manifests/`` takes on S3 one request after another against
folder by folder, several at once (``S3Store.list_keys``, what ``get``'s cold index
lists with), with each request delayed as a distant storage delays it.

``python -m tests.bench.listing_by_folder [--folders 100] [--per-folder 600]
[--delays 0,0.02,0.05] [--dir DIR]``

Puts FOLDERS date folders of PER-FOLDER empty objects each (the service's shape at
5 million calls: 500 folders of about 2,400) in a SeaweedFS of the bench's own,
then, through a proxy adding each delay to each request, times the plain listing
(``S3Store.list``) and the listing by folder; prints one JSON line per delay: the
wall time and the requests of each, and that both listed the same keys.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archiver.settings import StorageSettings
from archiver.storage import open_store
from archiver.storage.base import listed_keys
from tests.bench.latency import delaying_proxy
from tests.bench.shape.legs import seaweed_storage


async def _fill(settings: StorageSettings, folders: int, per_folder: int) -> None:
    async with open_store(settings) as store:
        if [k async for k in _first(store.list("manifests/"))]:
            return
        semaphore = asyncio.Semaphore(32)

        async def put(key: str) -> None:
            async with semaphore:
                await store.client.put_object(  # type: ignore[attr-defined]
                    Bucket=store.bucket,
                    Key=store.full_key(key),
                    Body=b"",  # type: ignore[attr-defined]
                )

        keys = [f"manifests/date=2021-{1 + d // 28:02}-{1 + d % 28:02}/{s:012}-w1.jsonl"
                for d in range(folders) for s in range(per_folder)]  # fmt: skip
        await asyncio.gather(*(put(k) for k in keys))


async def _first(listing: Any) -> Any:
    async for obj in listing:
        yield obj
        return


async def _time(settings: StorageSettings, count: Callable[[], int]) -> dict[str, Any]:
    async with open_store(settings) as store:
        start, sent = time.perf_counter(), count()
        plain = [obj.key async for obj in store.list("manifests/")]
        middle, sent_middle = time.perf_counter(), count()
        by_folder = [key async for key in listed_keys(store, "manifests/")]
        end, sent_end = time.perf_counter(), count()
    return {"keys": len(plain), "same": sorted(plain) == sorted(by_folder),
            "plain_s": round(middle - start, 2), "plain_requests": sent_middle - sent,
            "by_folder_s": round(end - middle, 2),
            "by_folder_requests": sent_end - sent_middle}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=100)
    parser.add_argument("--per-folder", type=int, default=600)
    parser.add_argument("--delays", default="0,0.02,0.05")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "list-bench")
    args = parser.parse_args()
    with seaweed_storage(args.dir, fresh=not (args.dir / "seaweed").exists()) as (settings, _):
        asyncio.run(_fill(settings, args.folders, args.per_folder))
        for delay in (float(d) for d in args.delays.split(",")):
            assert settings.endpoint_url is not None
            with delaying_proxy(settings.endpoint_url, delay) as (endpoint, count):
                proxied = settings.model_copy(update={"endpoint_url": endpoint})
                result = asyncio.run(_time(proxied, count))
                result["delay_s"] = delay
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
