"""Where witnessed checkpoints are kept: a folder or an S3 prefix the archive's writer
cannot rewrite (an auditor's disk, a second bucket under Object Lock), or one file.

Each checkpoint is a new object ``checkpoint-<unix time>-<size>.note``, written
once (a conditional write; a folder's files are created 0600), never replaced,
so the newest sorts last. ``verify`` reads the newest :data:`MAX_CHECKPOINTS`.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from archiver.errors import UsageError
from archiver.settings import StorageSettings
from archiver.storage import ObjectExistsError, open_store
from archiver.storage.base import ObjectStore
from archiver.witness.checkpoint import Checkpoint
from archiver.witness.note import MAX_NOTE_BYTES, NoteError, Verifier, open_note

MAX_CHECKPOINTS = 10_000
PREFIX = "checkpoint-"
SUFFIX = ".note"
NOTE_CONTENT_TYPE = "text/plain; charset=utf-8"


@dataclass
class Witnessed:
    """The checkpoints read from one place, and those that could not be trusted."""

    place: str
    checkpoints: list[Checkpoint] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    skipped: int = 0  # older checkpoints past MAX_CHECKPOINTS, not read


def checkpoint_name(checkpoint: Checkpoint, when: datetime) -> str:
    """The object name of a checkpoint cosigned at ``when``."""
    return f"{PREFIX}{int(when.timestamp()):012d}-{checkpoint.size:012d}{SUFFIX}"


def _kind(place: str) -> str:
    """``s3``, ``file``, ``folder`` or ``none`` (a folder not made yet)."""
    if place.startswith("s3://"):
        return "s3"
    path = Path(place)
    return "file" if path.is_file() else "folder" if path.is_dir() else "none"


def _settings(place: str, storage: StorageSettings) -> StorageSettings:
    """A place is reached like the archive's storage: S3 with its endpoint, or a folder."""
    fields: dict[str, object] = {"url": place}
    if place.startswith("s3://"):
        fields |= {
            "endpoint_url": storage.endpoint_url,
            "region": storage.region,
            "addressing_style": storage.addressing_style,
            "verify_tls": storage.verify_tls,
        }
    return StorageSettings.model_validate({k: v for k, v in fields.items() if v is not None})


async def _read_small(store: ObjectStore, key: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in store.read(key):
        size += len(chunk)
        if size > MAX_NOTE_BYTES:
            raise NoteError(f"larger than {MAX_NOTE_BYTES} bytes: not a checkpoint")
        chunks.append(chunk)
    return b"".join(chunks)


def _open(name: str, data: bytes, verifiers: list[Verifier], found: Witnessed) -> None:
    try:
        note = open_note(data, verifiers)
        found.checkpoints.append(Checkpoint.parse(note.text, note.signed_at, name))
    except NoteError as exc:
        found.refused.append((name, str(exc)))


async def read_checkpoints(
    place: str, storage: StorageSettings, verifiers: list[Verifier], *, new: bool = False
) -> Witnessed:
    """Every checkpoint at ``place`` (a file, a folder, an S3 prefix), oldest first,
    each checked against ``verifiers``; ``new``: a folder not made yet holds none."""
    found = Witnessed(place)
    path = Path(place)
    kind = await asyncio.to_thread(_kind, place)
    if kind == "file":
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise UsageError(f"--witness {place}: cannot read it ({exc.strerror})") from None
        _open(path.name, data, verifiers, found)
        return found
    if kind == "none" and new:
        return found
    if kind == "none":
        raise UsageError(f"--witness {place}: no such file or folder")
    async with open_store(_settings(place, storage), max_connections=8) as store:
        names = [
            obj.key
            async for obj in store.list(PREFIX)
            if obj.key.endswith(SUFFIX) and "/" not in obj.key
        ]
        found.skipped = max(0, len(names) - MAX_CHECKPOINTS)
        for name in sorted(names)[found.skipped :]:
            try:
                data = await _read_small(store, name)
            except NoteError as exc:
                found.refused.append((name, str(exc)))
                continue
            except KeyError:
                continue
            _open(name, data, verifiers, found)
    return found


async def read_note(place: str, storage: StorageSettings, name: str) -> bytes:
    """The bytes of the checkpoint ``name`` read from ``place`` (to hand it on, as it is)."""
    if await asyncio.to_thread(_kind, place) == "file":
        return await asyncio.to_thread(Path(place).read_bytes)
    if not place.startswith("s3://"):
        return await asyncio.to_thread((Path(place) / name).read_bytes)
    async with open_store(_settings(place, storage), max_connections=1) as store:
        return await _read_small(store, name)


async def write_checkpoint(place: str, storage: StorageSettings, name: str, note: str) -> str:
    """Write a signed checkpoint at ``place`` under ``name``, never over another; its
    full name."""
    if await asyncio.to_thread(_kind, place) == "file":
        raise UsageError(f"--to {place}: a folder or an s3:// prefix, not a file")
    data = note.encode()
    async with open_store(_settings(place, storage), max_connections=4) as store:
        try:
            await store.put_bytes(
                name,
                data,
                sha256=hashlib.sha256(data).hexdigest(),
                content_type=NOTE_CONTENT_TYPE,
            )
        except ObjectExistsError:
            raise UsageError(
                f"{store.full_key(name)} exists already (a checkpoint this second): try again"
            ) from None
        return store.full_key(name)
