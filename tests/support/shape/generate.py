"""Writing the archive of :mod:`tests.support.shape.plan` straight to a storage, no audio fetched.

Each recording is a small object (a real WAV or MP3 header, then a few hundred
bytes fixed by the call) stored under the key the default key template gives;
its line is :meth:`ManifestEntry.build` of the call with the object's true
SHA-256 and size and the proof the storage returned (on S3: ETag, ChecksumSHA256
as the archiver's own ``put_bytes`` gets them). Each batch is then written as
``flush_manifest`` writes one: the manifest object, its chain link
(:func:`next_link`), the head moved forward (:func:`advance_head`, the
product's compare-and-swap). The legacy objects carry neither proof nor link;
once they are written, :func:`archiver.manifest.seal.seal` seals them, as an
upgrade did.

Requests run with bounded concurrency: recordings of many batches at once,
while each writer's batches are chained in order. On a local directory the
files are written directly (mode 0600, directories 0700, no fsync: durably
writing millions of files would take most of the run; the files are the same);
the head still moves through the archiver's own store.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.manifest.chain import Link, next_link, sha256_hex
from archiver.manifest.entry import PROOF_FIELDS, ManifestEntry
from archiver.manifest.seal import seal
from archiver.manifest.writer import advance_head
from archiver.settings import DEFAULT_KEY_TEMPLATE
from archiver.simulator.audio import MP3_FRAME_HEADER, wav_header
from archiver.simulator.calls import SimCall
from archiver.storage import LocalStore, ObjectProof, ObjectStore
from archiver.storage.keys import render_key
from archiver.storage.layout import (
    CHAIN_CONTENT_TYPE,
    MANIFEST_CONTENT_TYPE,
    link_key,
    manifest_key,
)
from tests.support.shape.plan import TZ, Batch, Shape, batches

IN_FLIGHT = 64  # batches whose recordings or chain objects are being written at once


@dataclass
class Tally:
    """What was written."""

    recordings: int = 0
    recording_bytes: int = 0
    manifests: Counter[str] = field(default_factory=Counter)  # by writer kind
    lines: Counter[str] = field(default_factory=Counter)
    links: int = 0
    heads: int = 0
    takeovers: int = 0
    sealed: int = 0
    seal_writer: str | None = None
    writers: dict[str, str] = field(default_factory=dict)  # writer id -> kind
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """A JSON-ready account."""
        objects = self.recordings + sum(self.manifests.values()) + self.links + self.heads
        return {
            "calls": sum(self.lines.values()),
            "recordings": self.recordings,
            "recording_bytes": self.recording_bytes,
            "manifest_objects": dict(self.manifests),
            "lines": dict(self.lines),
            "lines_per_service_object": round(
                self.lines["service"] / max(1, self.manifests["service"]), 2
            ),
            "links": self.links,
            "head_writes": self.heads,
            "leader_changes": self.takeovers,
            "sealed_legacy_objects": self.sealed,
            "seal_writer": self.seal_writer,
            "writers": self.writers,
            "objects_written": objects,
            "seconds": round(self.seconds, 1),
            "objects_per_s": round(objects / max(self.seconds, 1e-9)),
        }


def recording_bytes(call: SimCall) -> tuple[bytes, str, str]:
    """A few hundred bytes that open like the call's real recording: (data, ext, type)."""
    body = hashlib.sha256(f"shape-recording:{call.seed}:{call.index}".encode()).digest() * 8
    if call.fmt == "wav":
        size = 44 + len(body)
        return wav_header(size) + body, "wav", "audio/wav"
    return MP3_FRAME_HEADER + body, "mp3", "audio/mpeg"


class Writer:
    """Writes batches to one store: recordings, manifest, link, head."""

    def __init__(self, store: ObjectStore, concurrency: int, head_every: int = 1) -> None:
        self.store = store
        self.local = isinstance(store, LocalStore)
        self.head_every = head_every
        # full_key is a prefix (S3) or nothing (local): computed once, not per recording.
        self.key_prefix = store.full_key("x")[:-1]
        self.slots = asyncio.Semaphore(concurrency)
        self.tally = Tally()
        self.previous: dict[str, tuple[int, str]] = {}  # writer -> (seq, link sha) last cut
        self.moved: dict[str, int] = {}  # writer -> seq its head was last moved to
        self.links: dict[str, bytes] = {}  # writer -> its last link's bytes
        self.head_locks: dict[str, asyncio.Lock] = {}

    async def put(self, key: str, data: bytes, content_type: str) -> ObjectProof:
        """One object, written once; the storage's proof of it."""
        if self.local:
            assert isinstance(self.store, LocalStore)
            _write_file(self.store.root / key, data)
            return ObjectProof()
        async with self.slots:
            written = await self.store.put_bytes(
                key, data, sha256=sha256_hex(data), content_type=content_type
            )
        return written.proof

    async def recordings(self, batch: Batch) -> list[ManifestEntry]:
        """Store the batch's recordings; their lines."""

        async def one(call: SimCall, record: Any) -> ManifestEntry:
            data, ext, content_type = recording_bytes(call)
            key = render_key(DEFAULT_KEY_TEMPLATE, record, ext, TZ)
            proof = await self.put(key, data, content_type)
            self.tally.recordings += 1
            self.tally.recording_bytes += len(data)
            return ManifestEntry.build(
                record,
                object_key=self.key_prefix + key,
                sha256=sha256_hex(data),
                size=len(data),
                content_type=content_type,
                archived_at=batch.archived_at,
                proof=proof,
            )

        return list(await asyncio.gather(*(one(call, rec) for call, rec in batch.calls)))

    def cut(self, batch: Batch, entries: list[ManifestEntry]) -> tuple[str, bytes, bytes | None]:
        """The batch's manifest key, bytes and link bytes (None: legacy, unchained)."""
        seq = self.previous.get(batch.writer, (0, ""))[0] + 1
        key = manifest_key(batch.day, seq, batch.writer)
        if batch.kind == "legacy":
            lines = [{k: v for k, v in e.fields.items() if k not in PROOF_FIELDS} for e in entries]
            content = "".join(ManifestEntry.from_line(f).to_line() + "\n" for f in lines).encode()
            self.previous[batch.writer] = (seq, "")
            return key, content, None
        content = "".join(e.to_line() + "\n" for e in entries).encode()
        before = self.previous.get(batch.writer)
        link = next_link(batch.writer, seq, key, content, len(entries), before if before else None)
        data = link.to_bytes()
        self.previous[batch.writer] = (seq, sha256_hex(data))
        self.links[batch.writer] = data
        return key, content, data

    async def finish_heads(self) -> None:
        """Every head at its writer's last link (once every link is written)."""
        for writer, link in self.links.items():
            if self.moved.get(writer, 0) < Link.from_bytes(link).seq:
                if await advance_head(self.store, link) is not None:
                    self.tally.heads += 1

    async def chain(self, batch: Batch, key: str, content: bytes, link: bytes | None) -> None:
        """Manifest object, link, head: in the writer's order."""
        await self.put(key, content, MANIFEST_CONTENT_TYPE)
        self.tally.manifests[batch.kind] += 1
        self.tally.lines[batch.kind] += len(batch.calls)
        self.tally.writers[batch.writer] = batch.kind
        self.tally.takeovers += batch.taken_over
        if link is None:
            return
        seq = Link.from_bytes(link).seq
        await self.put(link_key(batch.writer, seq), link, CHAIN_CONTENT_TYPE)
        self.tally.links += 1
        lock = self.head_locks.setdefault(batch.writer, asyncio.Lock())
        async with lock:
            # Links land out of order under concurrency: the head only moves forward.
            # With head_every > 1 it moves every that many links (and at the end).
            if self.moved.get(batch.writer, 0) + self.head_every <= seq:
                async with self.slots:
                    if await advance_head(self.store, link) is not None:
                        self.tally.heads += 1
                self.moved[batch.writer] = seq


def _write_file(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


async def generate(
    store: ObjectStore,
    shape: Shape,
    concurrency: int = 32,
    head_every: int = 1,
    progress: bool = True,
) -> Tally:
    """Write the whole archive of ``shape``; see the module docstring. ``head_every``:
    move each head every that many links (1: after each, as ``run`` does)."""
    writer = Writer(store, concurrency, head_every)
    started = time.monotonic()
    cutting: deque[tuple[Batch, asyncio.Task[list[ManifestEntry]]]] = deque()
    chaining: deque[asyncio.Task[None]] = deque()
    sealed = shape.legacy_calls == 0
    last_report = started

    async def drain(keep: int) -> None:
        while len(cutting) > keep:
            batch, stored = cutting.popleft()
            entries = await stored
            chaining.append(asyncio.create_task(writer.chain(batch, *writer.cut(batch, entries))))
            while len(chaining) > IN_FLIGHT:
                await chaining.popleft()

    async def upgrade() -> None:
        # Every legacy object is in the storage, then sealed (as `archiver seal` does).
        await drain(0)
        while chaining:
            await chaining.popleft()
        done = await seal(store)
        writer.tally.sealed, writer.tally.seal_writer = done.sealed, done.writer

    for batch in batches(shape):
        if not sealed and batch.kind != "legacy":
            await upgrade()
            sealed = True
        cutting.append((batch, asyncio.create_task(writer.recordings(batch))))
        await drain(IN_FLIGHT)
        if progress and time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            print(
                f"  {writer.tally.recordings} recordings in {last_report - started:.0f}s",
                flush=True,
            )
    await drain(0)
    while chaining:
        await chaining.popleft()
    if not sealed:
        await upgrade()
    await writer.finish_heads()
    writer.tally.seconds = time.monotonic() - started
    return writer.tally
