"""The insider's toolbox: what someone holding the storage's write credentials can do,
by hand, to an archive. Local files written directly; S3 objects with a plain S3 client
(a rewrite in a versioned bucket becomes a new version, a delete a delete marker)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from archiver.manifest.chain import Head, Link
from archiver.manifest.reader import read_object
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from archiver.storage.layout import CHAIN_PREFIX, head_key, link_key, parse_chain_key, stamp_key
from tests.adversary.conftest import Target
from tests.support.seaweed import SeaweedServer, admin_client


class Insider:
    """Reads through the archiver's store, writes and deletes around it."""

    def __init__(self, target: Target, store: ObjectStore, client: Any) -> None:
        self.target = target
        self.store = store
        self.client = client
        self.bucket = target.storage.url.removeprefix("s3://").partition("/")[0]

    async def get(self, key: str) -> bytes:
        return await read_object(self.store, key)

    async def put(self, key: str, data: bytes) -> None:
        if self.client is None:
            path = Path(self.target.storage.url, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        await self.client.put_object(
            Bucket=self.bucket,
            Key=self.store.full_key(key),
            Body=data,
            ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        )

    async def delete(self, key: str) -> None:
        if self.client is None:
            Path(self.target.storage.url, key).unlink()
        else:
            await self.client.delete_object(Bucket=self.bucket, Key=self.store.full_key(key))

    async def writers(self) -> list[str]:
        found = set()
        async for obj in self.store.list(CHAIN_PREFIX):
            parsed = parse_chain_key(obj.key)
            if parsed is not None:
                found.add(parsed[0])
        return sorted(found)

    async def head(self, writer: str) -> Head:
        return Head.from_bytes(await self.get(head_key(writer)))

    async def link(self, writer: str, seq: int) -> Link:
        return Link.from_bytes(await self.get(link_key(writer, seq)))

    async def rewrite_line(self, manifest_key: str) -> tuple[bytes, str]:
        """Alter the first recording of a manifest object and edit its line to match
        (sha256, size, and the storage's own proof fields); the new manifest bytes and
        the recording's key."""
        lines = (await self.get(manifest_key)).decode().splitlines()
        line = json.loads(lines[0])
        key = self.store.relative_key(line["object_key"])
        audio = bytearray(await self.get(key))
        audio[-64:] = bytes(b ^ 0x5A for b in audio[-64:])
        await self.put(key, bytes(audio))
        stored = await self.store.head(key)
        assert stored is not None
        proof = stored.proof
        line |= {
            "sha256": hashlib.sha256(audio).hexdigest(),
            "size": len(audio),
            "etag": proof.etag,
            "version_id": proof.version_id,
            "checksum_sha256": proof.checksum_sha256,
            "checksum_type": proof.checksum_type,
        }
        lines[0] = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        content = ("\n".join(lines) + "\n").encode()
        await self.put(manifest_key, content)
        return content, key

    async def relink(self, writer: str, seq: int, content: bytes | None) -> Head:
        """Recompute link ``seq`` (over the new manifest ``content``, if given) and every
        later one, then the head: a consistent chain again."""
        head = await self.head(writer)
        previous: bytes | None = None
        for n in range(seq, head.seq + 1):
            link = await self.link(writer, n)
            if n == seq and content is not None:
                link = replace(
                    link,
                    manifest_sha256=hashlib.sha256(content).hexdigest(),
                    manifest_size=len(content),
                )
            if previous is not None:
                link = replace(link, prev_sha256=hashlib.sha256(previous).hexdigest())
            previous = link.to_bytes()
            await self.put(link.key, previous)
        assert previous is not None
        new_head = Head.of(previous)
        await self.put(head_key(writer), new_head.to_bytes())
        return new_head

    async def consistent_rewrite(self, writer: str, seq: int) -> str:
        """A recording of link ``seq`` altered, its line edited to match, the chain
        recomputed from there to the head: every check of the chain passes. Its key."""
        link = await self.link(writer, seq)
        content, key = await self.rewrite_line(link.manifest_key)
        await self.relink(writer, seq, content)
        return key

    async def truncate(self, writer: str) -> Link:
        """The newest link, its token and its manifest object deleted, the head moved back
        to the link before: the calls of the cut batch vanish. The link cut."""
        head = await self.head(writer)
        cut = await self.link(writer, head.seq)
        assert cut.prev_seq is not None
        await self.delete(cut.manifest_key)
        await self.delete(cut.key)
        if await self.store.head(stamp_key(writer, head.seq)) is not None:
            await self.delete(stamp_key(writer, head.seq))
        before = await self.get(link_key(writer, cut.prev_seq))
        await self.put(head_key(writer), Head.of(before).to_bytes())
        return cut


@asynccontextmanager
async def insider(target: Target, seaweed: SeaweedServer) -> AsyncIterator[Insider]:
    """The insider's tools on ``target``."""
    async with open_store(target.storage) as store:
        if target.kind == "local":
            yield Insider(target, store, None)
            return
        async with admin_client(seaweed) as client:
            yield Insider(target, store, client)
