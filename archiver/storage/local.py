"""The object store on a local directory (aiofiles).

A write goes to a hidden temporary file beside its final name
(``.<name>.<random>.partial``), is fsynced, then published with
``os.link(tmp, final)``: the link is atomic and fails if ``final`` exists,
which makes it the conditional write S3 does with ``If-None-Match: *``.
Readers therefore never see a half-written file, and a crash leaves at worst a
``.partial`` file that :meth:`LocalStore.cleanup_incomplete` removes. The one
object that is overwritten, a chain head, is replaced by a rename under a
lock of its folder, only if it is still what its writer read (see
:mod:`archiver.storage.local_files`).

Files are created with the configured mode (0600 by default) and folders with
it plus search (0700), whatever the umask. No symbolic link inside the root is
ever followed: one planted as a folder of a key refuses the key (an error, not
a write outside the root); one planted at a final name is never opened, so it
reads as "a different object" rather than, for a link to ``/dev/zero``, an
endless hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiofiles

from archiver.errors import PlantedLinkError, RetriableError, StorageError
from archiver.private_files import DEFAULT_FILE_MODE, fsync_dir, make_dirs, parse_mode
from archiver.storage.audio import CONTENT_TYPES
from archiver.storage.base import ObjectExistsError, PutOutcome, StoredObject, Tagged, Written
from archiver.storage.keys import validate_key
from archiver.storage.local_files import (
    HASH_CHUNK,
    check_digest,
    create_opener,
    folder_names,
    is_hidden,
    key_runs,
    open_regular,
    read_small,
    remove_temp_files,
    scan_sorted,
    some,
    swap_file,
    temp_path,
    type_of_key,
    unlink_quiet,
    unusable,
    write_new_file,
)

# The probe calls a disk with less free space than this full: the next
# recording would not fit (readiness turns false until space returns).
MIN_FREE = 1024 * 1024


class LocalStore:
    """An :class:`~archiver.storage.base.ObjectStore` on a directory tree.

    Keys are ``/``-separated paths relative to ``root``; a key that could
    escape the root (``..``, an absolute path, a backslash, NUL) is refused
    with ValueError. Nothing is created until the first write.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, file_mode: int = parse_mode(DEFAULT_FILE_MODE)
    ) -> None:
        self._root = Path(root).absolute()
        self._mode = file_mode

    @property
    def description(self) -> str:
        """The directory, as an absolute path."""
        return str(self._root)

    @property
    def root(self) -> Path:
        """The directory every key is relative to."""
        return self._root

    def full_key(self, key: str) -> str:
        """The key itself: the file's path relative to the root."""
        self._path(key)
        return key

    def relative_key(self, full_key: str) -> str:
        """The key itself (a local manifest's ``object_key`` is already relative)."""
        self._path(full_key)
        return full_key

    def _path(self, key: str) -> Path:
        validate_key(key)
        segments = key.split("/")
        if any(is_hidden(segment) for segment in segments):
            # list() takes such names for our temporary files.
            raise ValueError(f"invalid storage key {key!r}: a temporary file's name")
        self._refuse_symlinks(key, segments[:-1])
        return self._root.joinpath(*segments)

    def _refuse_symlinks(self, key: str, folders: list[str]) -> None:
        """StorageError if a folder on the way to ``key`` is a symbolic link.

        The root itself may be one (the operator chose it); inside it, a link
        could only have been planted, and would send writes outside the root.
        """
        current = self._root
        for name in folders:
            current = current / name
            try:
                st = os.lstat(current)
            except (FileNotFoundError, NotADirectoryError):
                return  # created by us, without following anything, when written
            if stat.S_ISLNK(st.st_mode):
                raise PlantedLinkError(self.description, key, str(current))

    @contextmanager
    def _os_errors(self, action: str, key: str) -> Iterator[None]:
        """Turn filesystem failures (permissions, full disk...) into StorageError."""
        try:
            yield
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StorageError(f"{self.description}: cannot {action} {key}: {reason}") from exc

    async def _sha256_of(self, path: Path) -> str | None:
        """The file's SHA-256; None if it is not a regular file (a planted symlink,
        a FIFO): such a name holds no recording of ours."""
        digest = hashlib.sha256()
        try:
            fd = await asyncio.to_thread(open_regular, path)
        except OSError:
            return None
        async with aiofiles.open(fd, "rb") as f:
            while chunk := await f.read(HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    async def _publish(self, key: str, tmp: Path, final: Path, sha256: str) -> Written:
        """Link the fsynced ``tmp`` to ``final`` unless something is there already."""
        try:
            await asyncio.to_thread(os.link, tmp, final)
        except FileExistsError:
            existing = await self._sha256_of(final)
            if existing is not None and existing == sha256.lower():
                return Written(PutOutcome.ALREADY_PRESENT)
            raise ObjectExistsError(key, existing) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
            raise StorageError(
                f"{self.description}: the filesystem does not support hard links, which "
                "the archiver needs for writes that never overwrite"
            ) from exc
        await asyncio.to_thread(fsync_dir, final.parent)
        # A file keeps no checksum of its own: no proof, verify re-hashes it.
        return Written(PutOutcome.CREATED)

    async def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        retain_until: datetime | None = None,
    ) -> Written:
        """Write ``data`` under ``key`` only if absent (see the module docstring); a file
        keeps no content type, metadata or lock date (the manifest holds what matters)."""
        final = self._path(key)
        check_digest(key, hashlib.sha256(data).hexdigest(), sha256)
        tmp = temp_path(final)
        with self._os_errors("write", key):
            await asyncio.to_thread(make_dirs, final.parent, self._mode, durable=True)
            try:
                # One thread call opens, writes, fsyncs and closes: a task cancelled
                # meanwhile (a flusher at shutdown) cannot leave an open file behind.
                # The thread cannot be stopped, so a cancelled caller waits for it
                # before the clean-up below; else the unlink could run first and the
                # thread create the temporary file after it.
                writing = asyncio.ensure_future(
                    asyncio.to_thread(write_new_file, tmp, data, self._mode)
                )
                try:
                    await asyncio.shield(writing)
                except asyncio.CancelledError:
                    with contextlib.suppress(OSError):
                        await writing
                    raise
                return await self._publish(key, tmp, final, sha256)
            finally:
                await asyncio.to_thread(unlink_quiet, tmp)

    async def read_tagged(self, key: str) -> Tagged | None:
        """The file's bytes and SHA-256 (its tag); None if absent."""
        path = self._path(key)
        with self._os_errors("read", key):
            found = await asyncio.to_thread(read_small, path)
        return None if found is None else Tagged(*found)

    async def replace_bytes(
        self, key: str, data: bytes, *, content_type: str, expected: str | None
    ) -> bool:
        """Rename a temporary file over ``key`` if its tag is still ``expected``; see
        :func:`~archiver.storage.local_files.swap_file`."""
        final = self._path(key)
        with self._os_errors("write", key):
            await asyncio.to_thread(make_dirs, final.parent, self._mode, durable=True)
            # One thread call locks, compares, writes and renames: a cancelled caller
            # cannot leave the lock held or a temporary file behind.
            return await asyncio.to_thread(swap_file, final, data, self._mode, expected)

    async def start_upload(
        self,
        key: str,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        retain_until: datetime | None = None,
    ) -> LocalUpload:
        """Open the hidden temporary file the parts are appended to."""
        final = self._path(key)
        tmp = temp_path(final)
        with self._os_errors("write", key):
            await asyncio.to_thread(make_dirs, final.parent, self._mode, durable=True)
            # The open runs in a thread that a cancellation cannot stop: if we are
            # cancelled meanwhile, wait for it, then close and remove what it made.
            opener = functools.partial(create_opener, self._mode)
            opening = asyncio.ensure_future(aiofiles.open(tmp, "xb", opener=opener))
            try:
                file = await asyncio.shield(opening)
            except asyncio.CancelledError:
                with contextlib.suppress(OSError):
                    opened = await opening
                    await opened.close()
                await asyncio.to_thread(unlink_quiet, tmp)
                raise
        return LocalUpload(self, key, final, tmp, file)

    async def head(self, key: str) -> StoredObject | None:
        """Size and guessed content type; ``sha256`` is None (a file stores no checksum)."""
        path = self._path(key)
        try:
            st = await asyncio.to_thread(os.lstat, path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return StoredObject(key, key, st.st_size, None, type_of_key(key, CONTENT_TYPES))

    async def read(
        self, key: str, chunk_size: int = 1024 * 1024, *, start: int = 0
    ) -> AsyncIterator[bytes]:
        """Stream the file from byte ``start``; KeyError if absent."""
        path = self._path(key)
        try:
            fd = await asyncio.to_thread(open_regular, path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise KeyError(key) from None  # a symlink: not an object of ours
        f = await aiofiles.open(fd, "rb")
        try:
            if start > 0:
                await f.seek(start)
            while chunk := await f.read(chunk_size):
                yield chunk
        finally:
            await f.close()

    async def list(self, prefix: str, *, start_after: str = "") -> AsyncIterator[StoredObject]:
        """Every file whose key starts with ``prefix`` (after ``start_after``), in key order."""
        if "\0" in prefix or "\\" in prefix or ".." in prefix.split("/"):
            raise ValueError(f"invalid storage prefix {prefix!r}")
        base = prefix.rpartition("/")[0]
        start = self._path(base) if base else self._root
        async for obj in self._walk(start, base + "/" if base else "", prefix, start_after):
            if obj.key > start_after:
                yield obj

    async def list_keys(self, prefix: str) -> AsyncIterator[str]:
        """The keys :meth:`list` lists, in the same order, without reading each file's size
        and time (see :func:`archiver.storage.base.listed_keys`): a folder at a time."""
        if "\0" in prefix or "\\" in prefix or ".." in prefix.split("/"):
            raise ValueError(f"invalid storage prefix {prefix!r}")
        base = prefix.rpartition("/")[0]
        start = self._path(base) if base else self._root
        runs = key_runs(start, base + "/" if base else "", prefix)
        while (run := await asyncio.to_thread(next, runs, None)) is not None:
            for key in run:
                yield key

    async def list_folders(self, prefix: str) -> Sequence[str]:
        """The names of the folders right under ``prefix`` (a folder's key and ``/``)."""
        names = await asyncio.to_thread(folder_names, self._path(prefix.removesuffix("/")))
        return [name for name in names if not is_hidden(name)]

    async def _walk(
        self, directory: Path, rel: str, prefix: str, after: str
    ) -> AsyncIterator[StoredObject]:
        entries = await asyncio.to_thread(scan_sorted, directory, rel, after)
        # A large folder's entries are read back from its sorted runs' files: in a thread.
        while batch := await asyncio.to_thread(some, entries):
            for name, is_dir, size, mtime in batch:
                key = rel + name
                if is_dir:
                    sub = key + "/"
                    if sub.startswith(prefix) or prefix.startswith(sub):
                        async for obj in self._walk(directory / name, sub, prefix, after):
                            yield obj
                elif key.startswith(prefix):
                    modified = datetime.fromtimestamp(mtime, UTC)
                    kind = type_of_key(key, CONTENT_TYPES)
                    yield StoredObject(key, key, size, None, kind, modified=modified)

    async def delete(self, key: str) -> None:
        """Remove the file; nothing happens if it is absent."""
        path = self._path(key)
        with self._os_errors("delete", key):
            await asyncio.to_thread(unlink_quiet, path)

    async def url_for(self, key: str, expires: int) -> str:
        """The file's absolute path (``expires`` has no meaning here)."""
        return str(self._path(key))

    async def probe(self) -> None:
        """The root is (or can be made) a directory we may write in (StorageError if not)."""
        problem = await asyncio.to_thread(unusable, self._root, self._mode, MIN_FREE)
        if problem is not None:
            raise StorageError(f"{self.description}: {problem}")

    async def cleanup_incomplete(self, older_than: datetime | None = None) -> int:
        """Remove the ``.partial`` files a crash left behind; returns how many.

        Only those last written before ``older_than`` (every one if None): a
        younger one may be another process's write in progress.
        """
        bound = older_than.timestamp() if older_than is not None else None
        with self._os_errors("clean", "temporary files"):
            return await asyncio.to_thread(remove_temp_files, self._root, bound)


class LocalUpload:
    """A :class:`~archiver.storage.base.Upload` into a hidden temporary file."""

    def __init__(self, store: LocalStore, key: str, final: Path, tmp: Path, file: Any) -> None:
        self._store = store
        self._key = key
        self._final = final
        self._tmp = tmp
        self._file = file  # aiofiles' binary file object (untyped generic)
        self._digest = hashlib.sha256()
        self._size = 0
        self._closed = False

    async def write_part(self, data: bytes) -> None:
        """Append one part to the temporary file."""
        with self._store._os_errors("write", self._key):
            await self._file.write(data)
        self._digest.update(data)
        self._size += len(data)

    async def complete(self, sha256: str, size: int) -> Written:
        """Fsync and publish the file, only if absent (or present with this SHA-256)."""
        try:
            if size != self._size:
                raise RetriableError(f"{self._key}: {self._size} bytes written, {size} declared")
            check_digest(self._key, self._digest.hexdigest(), sha256)
            with self._store._os_errors("write", self._key):
                await self._file.flush()
                await asyncio.to_thread(os.fsync, self._file.fileno())
                await self._close()
                return await self._store._publish(self._key, self._tmp, self._final, sha256)
        finally:
            await self.abort()

    async def abort(self) -> None:
        """Close and remove the temporary file; safe to call twice."""
        await self._close()
        await asyncio.to_thread(unlink_quiet, self._tmp)

    async def _close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._file.close()
