"""A watcher that lists the storage over and over while the archiver runs.

Every object it ever sees under ``recordings/`` must be one of the simulated
recordings with exactly its bytes (size and SHA-256); every manifest object
must parse, list only such recordings, never change once seen, and no
recording may be listed by two manifest lines. A violation is recorded with
what was seen, so a corrupt, truncated or HTML object is caught even if it
existed for a moment only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from archiver.models import CallRecord, Provider
from archiver.settings import DEFAULT_KEY_TEMPLATE
from archiver.simulator import SimCall
from archiver.storage.keys import render_key
from tests.support.seaweed import SeaweedServer, admin_client


@dataclass(frozen=True)
class Expected:
    key: str
    size: int
    sha256: str


def expected_objects(
    calls: Iterable[SimCall], tz: ZoneInfo, provider: Provider = Provider.CDR_V2
) -> dict[str, Expected]:
    """sip_call_id -> the object its recording must become (default key template)."""
    out: dict[str, Expected] = {}
    for call in calls:
        if not call.has_recording:
            continue
        record = CallRecord(
            provider=provider,
            cdr_id=call.cdr_id,
            sip_call_id=call.sip_call_id,
            started_at=call.started_at,
        )
        key = render_key(DEFAULT_KEY_TEMPLATE, record, call.fmt, tz)
        out[call.sip_call_id] = Expected(key, call.size, call.sha256())
    return out


@dataclass(frozen=True)
class Listed:
    key: str  # relative to the storage root
    version: str  # changes if the object is replaced
    size: int


class Lister(Protocol):
    def list(self, prefix: str) -> AsyncIterator[Listed]: ...

    async def read(self, key: str) -> bytes: ...

    async def leftovers(self) -> list[str]: ...


class LocalLister:
    """Lists the directory itself (not through the archiver's store)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp_files_seen: set[str] = set()

    async def list(self, prefix: str) -> AsyncIterator[Listed]:
        for item in await asyncio.to_thread(self._scan, prefix):
            yield item

    def _scan(self, prefix: str) -> list[Listed]:
        out = []
        top = self.root / prefix
        for dirpath, _, names in os.walk(top):
            for name in names:
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if name.startswith(".") and name.endswith(".partial"):
                    self.temp_files_seen.add(key)
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                out.append(Listed(key, f"{st.st_ino}:{st.st_mtime_ns}", st.st_size))
        return out

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread((self.root / key).read_bytes)

    async def leftovers(self) -> list[str]:
        return sorted(str(p) for p in self.root.rglob("*.partial"))


class S3Lister:
    """Lists the bucket with the test's own client, straight from SeaweedFS."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    async def list(self, prefix: str) -> AsyncIterator[Listed]:
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                key = str(item["Key"])[len(self.prefix) :]
                version = f"{item['ETag']}:{item['LastModified'].isoformat()}"
                yield Listed(key, version, int(item["Size"]))

    async def read(self, key: str) -> bytes:
        resp = await self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        async with resp["Body"] as body:
            return bytes(await body.read())

    async def leftovers(self) -> list[str]:
        resp = await self.client.list_multipart_uploads(Bucket=self.bucket)
        return sorted(u["Key"] for u in resp.get("Uploads", []))


@contextlib.asynccontextmanager
async def s3_lister(server: SeaweedServer, bucket: str, prefix: str) -> AsyncIterator[S3Lister]:
    async with admin_client(server) as client:
        yield S3Lister(client, bucket, prefix)


@dataclass
class Watcher:
    """Run :meth:`watch` as a task during the archiver's run; read the verdict after."""

    lister: Lister
    expected: dict[str, Expected]
    interval: float = 0.02
    scans: int = 0
    objects_checked: int = 0
    violations: list[str] = field(default_factory=list)
    recordings: dict[str, str] = field(default_factory=dict)  # key -> version, as last seen
    manifests: dict[str, str] = field(default_factory=dict)
    manifest_lines: dict[str, str] = field(default_factory=dict)  # sip_call_id -> manifest key

    def __post_init__(self) -> None:
        self._by_key = {e.key: e for e in self.expected.values()}

    async def watch(self, stop: asyncio.Event) -> None:
        """Scan until ``stop`` is set, then once more."""
        while not stop.is_set():
            await self.scan()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
        await self.scan()

    async def scan(self) -> None:
        self.scans += 1
        async for item in self.lister.list("recordings/"):
            if self.recordings.get(item.key) != item.version:
                await self._check_recording(item)
        async for item in self.lister.list("manifests/"):
            if self.manifests.get(item.key) is None:
                await self._check_manifest(item)
            elif self.manifests[item.key] != item.version:
                self.violations.append(f"manifest {item.key} was rewritten")
                self.manifests[item.key] = item.version

    async def _check_recording(self, item: Listed) -> None:
        if item.key in self.recordings:
            self.violations.append(f"{item.key} was replaced by another object")
        self.recordings[item.key] = item.version
        self.objects_checked += 1
        want = self._by_key.get(item.key)
        if want is None:
            self.violations.append(f"{item.key}: an object no recording should become")
            return
        try:
            data = await self.lister.read(item.key)
        except (FileNotFoundError, KeyError) as exc:
            self.violations.append(f"{item.key}: listed, then unreadable ({exc!r})")
            return
        digest = hashlib.sha256(data).hexdigest()
        if (len(data), digest) != (want.size, want.sha256):
            head = data[:40]
            self.violations.append(
                f"{item.key}: {len(data)} bytes, sha256 {digest[:12]}..., starting {head!r}; "
                f"expected {want.size} bytes, {want.sha256[:12]}..."
            )

    async def _check_manifest(self, item: Listed) -> None:
        self.manifests[item.key] = item.version
        data = await self.lister.read(item.key)
        try:
            lines = [json.loads(line) for line in data.decode().splitlines()]
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.violations.append(f"manifest {item.key} does not parse: {exc}")
            return
        if not data.endswith(b"\n") or not lines:
            self.violations.append(f"manifest {item.key} is empty or cut short")
        for line in lines:
            sip = line.get("sip_call_id")
            want = self.expected.get(sip)
            if want is None:
                self.violations.append(f"manifest {item.key}: unknown call {sip!r}")
                continue
            if (line.get("size"), line.get("sha256")) != (want.size, want.sha256):
                self.violations.append(f"manifest {item.key}: wrong size or hash for {sip}")
            if not str(line.get("object_key", "")).endswith(want.key):
                self.violations.append(f"manifest {item.key}: wrong key for {sip}")
            if sip in self.manifest_lines:
                self.violations.append(
                    f"{sip} is in two manifest lines ({self.manifest_lines[sip]}, {item.key})"
                )
            self.manifest_lines[sip] = item.key

    def assert_clean(self, *, min_scans: int = 5) -> None:
        assert self.violations == [], "\n".join(self.violations[:20])
        assert self.scans >= min_scans, f"the watcher scanned only {self.scans} time(s)"
