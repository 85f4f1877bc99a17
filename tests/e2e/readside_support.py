"""An archive of several manifest objects, and an insider's hands on it (tests of issue 20's
read side: get, verify's ORPHAN, reconcile --fix).

``several_batches`` writes a small archive through the real pipeline with two
lines per manifest object (several links); ``Insider`` reads, writes and
deletes its objects from outside the archiver: plain S3 requests with the
bucket owner's credentials, or file operations in a local directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archiver.manifest.chain import Head, Link
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage.layout import head_key, link_key
from tests.support.cli import cli_env, s3_storage_env
from tests.support.pipeline import backfill, make_settings
from tests.support.seaweed import SeaweedServer, admin_client

KINDS = ("local", "s3")


@dataclass
class Insider:
    """Someone holding the archive's write credentials, working around the archiver."""

    storage: StorageSettings
    server: SeaweedServer | None
    env: dict[str, str]  # the CLI's environment for this archive (a fresh state)

    @property
    def _bucket_prefix(self) -> tuple[str, str]:
        bucket, prefix = self.storage.bucket_and_prefix
        return bucket, (prefix.rstrip("/") + "/" if prefix else "")

    def relative(self, object_key: str) -> str:
        """A manifest line's ``object_key`` as a key under the storage's root."""
        return object_key.removeprefix(self._bucket_prefix[1]) if self.server else object_key

    def path(self, key: str) -> Path:
        return Path(self.storage.url) / key

    async def read(self, key: str) -> bytes:
        if self.server is None:
            return self.path(key).read_bytes()
        bucket, prefix = self._bucket_prefix
        async with admin_client(self.server) as client:
            got = await client.get_object(Bucket=bucket, Key=prefix + key)
            async with got["Body"] as body:
                return bytes(await body.read())

    async def keys(self, under: str) -> list[str]:
        if self.server is None:
            root = Path(self.storage.url)
            return sorted(
                str(p.relative_to(root)) for p in (root / under).rglob("*") if p.is_file()
            )
        bucket, prefix = self._bucket_prefix
        async with admin_client(self.server) as client:
            listed = await client.list_objects_v2(Bucket=bucket, Prefix=prefix + under)
        return sorted(str(o["Key"])[len(prefix) :] for o in listed.get("Contents", []))

    async def put(self, key: str, data: bytes) -> None:
        if self.server is None:
            path = self.path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            path.write_bytes(data)
            return
        bucket, prefix = self._bucket_prefix
        async with admin_client(self.server) as client:
            await client.put_object(Bucket=bucket, Key=prefix + key, Body=data)

    async def delete(self, key: str) -> None:
        if self.server is None:
            self.path(key).unlink()
            return
        bucket, prefix = self._bucket_prefix
        async with admin_client(self.server) as client:
            await client.delete_object(Bucket=bucket, Key=prefix + key)

    async def lines(self) -> list[dict[str, Any]]:
        """Every manifest line, with ``_manifest`` set to its object's key."""
        found = []
        for key in await self.keys("manifests/"):
            found += [
                {**json.loads(raw), "_manifest": key} for raw in (await self.read(key)).splitlines()
            ]
        return found

    async def truncate(self) -> tuple[str, list[dict[str, Any]]]:
        """Cut the newest batch: its manifest object and link deleted, the head moved back to
        the link before (as a consistent insider would). Returns the writer and its lines."""
        (writer,) = {k.split("/")[2] for k in await self.keys("_archiver/chain/")}
        head = Head.from_bytes(await self.read(head_key(writer)))
        newest = Link.from_bytes(await self.read(link_key(writer, head.seq)))
        assert newest.prev_seq is not None, "the archive needs two batches to cut one"
        cut = [line for line in await self.lines() if line["_manifest"] == newest.manifest_key]
        previous = await self.read(link_key(writer, newest.prev_seq))
        await self.delete(newest.manifest_key)
        await self.delete(link_key(writer, head.seq))
        await self.put(head_key(writer), Head.of(previous).to_bytes())
        return writer, cut


async def several_batches(
    kind: str,
    tmp_path: Path,
    make_bucket: Any,
    s3_settings: Any,
    server: SeaweedServer | None,
    served: Simulator | None = None,
) -> Insider:
    """Six calls archived two lines per manifest object (so three links), on ``kind``;
    from ``served`` (a simulator being served) if given. The builder's state stays in
    ``tmp_path/builder/state.sqlite3``."""
    sim = served or Simulator(SimConfig(seed=20, calls=6, recording_fraction=1.0, max_size=40_000))
    if kind == "local":
        storage = StorageSettings(url=str(tmp_path / "archive"))
        env: dict[str, str] = {"ARCHIVER_STORAGE__URL": storage.url}
        server = None
    else:
        assert server is not None
        storage = s3_settings(await make_bucket())
        env = s3_storage_env(storage, server)
    builder = tmp_path / "builder"
    builder.mkdir()
    if served is not None:
        settings = make_settings(
            sim, sim.base_url, storage, str(builder / "state.sqlite3"), manifest_batch=2
        )
        await backfill(settings, sim)
    else:
        async with sim.serve() as base:
            settings = make_settings(
                sim, base, storage, str(builder / "state.sqlite3"), manifest_batch=2
            )
            await backfill(settings, sim)
    fresh = tmp_path / "fresh"
    fresh.mkdir(exist_ok=True)
    env |= {
        "ARCHIVER_STATE__URL": str(fresh / "state.sqlite3"),
        "ARCHIVER_CONSOLE__INDEX_PATH": str(fresh / "index" / "index.sqlite3"),
        "ARCHIVER_MANIFEST_INTERVAL": "0.2",
    }
    return Insider(storage, server, cli_env(env))
