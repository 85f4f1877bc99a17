"""A selection of archived calls as one ZIP, written as it goes: the console's
download and ``archiver export`` share it.

The ZIP holds ``recordings/<name>``, ``manifest.csv`` and ``manifest.json``
(the calls' manifest lines, as ``archiver search`` exports them) and
``SHA256SUMS`` (``sha256sum -c`` checks every file). It is written with the
standard library's :mod:`zipfile` into a sink drained after every write:
zipfile writes to a stream it cannot seek (sizes and CRCs go in data
descriptors after each entry), each entry's size is known from the manifest
so ZIP64 is chosen up front when needed, and no dependency is added for it.
Memory holds one chunk of a recording and the selection's metadata, whatever
the recordings weigh. Recordings are stored, not deflated: audio does not
shrink.

Each recording is read at the version its line pinned (when the storage keeps
versions) and hashed while it is written: one whose bytes are not the
archived ones stops the ZIP short (:class:`ChangedError`); it then has no
central directory, so no tool reads it as complete.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import IO, cast

from archiver.manifest.entry import ManifestEntry
from archiver.retrieval.errors import IntegrityError, IntegrityKind
from archiver.retrieval.fetch import recorded_version
from archiver.retrieval.search import to_csv, to_json
from archiver.storage import ObjectStore, VersionedStore


class ChangedError(IntegrityError):
    """A recording's bytes, read for the ZIP, are not the archived ones."""

    def __init__(self, call: ManifestEntry, key: str) -> None:
        super().__init__(
            IntegrityKind.CORRUPT,
            f"{key} (recording {call.sip_call_id}) changed while being exported: "
            "its bytes are not the archived ones; the export is incomplete",
        )
        self.call = call


class ZipSink:
    """A write-only file for zipfile whose bytes are taken after each write."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        """Keep ``data`` until :meth:`take`."""
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to do: the bytes are taken."""

    def take(self) -> bytes:
        """The bytes written since the last take."""
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def entry_info(name: str, size: int) -> zipfile.ZipInfo:
    """A stored (not deflated) entry of ``size`` bytes, readable by everyone who has the ZIP."""
    info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size  # known up front: zipfile picks ZIP64 itself when it is needed
    info.external_attr = 0o644 << 16
    return info


def _archived_bytes(store: ObjectStore, call: ManifestEntry, key: str) -> AsyncIterator[bytes]:
    version = recorded_version(store, call)
    if version is not None and isinstance(store, VersionedStore):
        return store.read_version(key, version)
    return store.read(key)


async def write_export(
    store: ObjectStore,
    selection: Sequence[tuple[str, ManifestEntry]],
    send: Callable[[bytes], Awaitable[None]],
) -> None:
    """Write the ZIP of ``selection`` (``(file name, call)`` pairs) through ``send``.

    Raises :class:`ChangedError` as soon as a recording's bytes differ from its line.
    """
    sink = ZipSink()
    sums: list[str] = []
    with zipfile.ZipFile(cast(IO[bytes], sink), "w") as archive:
        for file_name, call in selection:
            name = f"recordings/{file_name}"
            digest = hashlib.sha256()
            key = store.relative_key(call.object_key)
            with archive.open(entry_info(name, call.size), "w") as entry:
                async for chunk in _archived_bytes(store, call, key):
                    digest.update(chunk)
                    entry.write(chunk)
                    await send(sink.take())
            if digest.hexdigest() != call.sha256:
                raise ChangedError(call, key)
            await send(sink.take())
            sums.append(f"{call.sha256}  {name}\n")
        calls = [call for _, call in selection]
        for name, text in (("manifest.csv", to_csv(calls)), ("manifest.json", to_json(calls))):
            data = text.encode("utf-8")
            archive.writestr(entry_info(name, len(data)), data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
            await send(sink.take())
        archive.writestr(entry_info("SHA256SUMS", 0), "".join(sums).encode("utf-8"))
    await send(sink.take())
