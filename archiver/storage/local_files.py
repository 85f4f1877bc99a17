"""The local store's file operations: blocking calls, each run in a thread.

Hidden names the store keeps beside the objects, never listed nor accepted as
keys: temporary files (``.<name>.<random>.partial``, removed by
``cleanup_incomplete``). A conditional replace locks the folder it writes in
(``flock`` on the folder itself), so it leaves no lock file in the archive.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import heapq
import itertools
import logging
import mimetypes
import os
import pickle
import secrets
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TypeVar

from archiver.errors import RetriableError
from archiver.private_files import create_new, fsync_dir, make_dirs

TEMP_SUFFIX = ".partial"
HASH_CHUNK = 1024 * 1024
# The tag of something at a key that is not a regular file (a planted symlink, a
# FIFO): no object of ours, so a conditional replace may put the object in its place.
NOT_A_FILE = "not-a-regular-file"
log = logging.getLogger("archiver.storage")
# The entries a folder's listing sorts in memory at once (about 100 bytes each). A
# larger folder (a writer's chain folder grows by a link per manifest object, 711,089
# at 5 million calls) is sorted in runs of this many, each kept in a private temporary
# file, and the runs are merged: its memory does not grow with the folder.
SORT_RUN = 100_000
# The entries of a run read back from its file at a time, while merging.
_SLICE = 4_096

T = TypeVar("T")


def is_temp(name: str) -> bool:
    """True for a temporary file's name."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def is_hidden(name: str) -> bool:
    """True for a name the store keeps for itself (a temporary file): never an object's."""
    return is_temp(name)


def temp_path(final: Path) -> Path:
    """A fresh temporary file's path beside ``final``."""
    return final.with_name(f".{final.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")


def unlink_quiet(path: Path) -> None:
    """Remove ``path`` if it is there."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def scan_sorted(
    directory: Path, rel: str = "", after: str = "", run: int | None = None
) -> Iterator[tuple[str, bool, int, float]]:
    """(name, is_dir, size, mtime) of a directory's entries, in the order of the keys they hold.

    A directory sorts as ``name/``, so ``a.txt`` (``.`` < ``/``) comes before
    the keys in ``a/``: a depth-first walk then yields keys in plain string
    order, the order S3 lists them in. Files whose key (``rel`` + name) is not
    after ``after`` are left out unread (a chain's newest links, not its
    million old ones, each a ``stat``).

    The whole folder is read (and each file ``stat``-ed) before the first entry,
    one string an entry: ``name/`` for a directory, ``name``, NUL, size, NUL,
    mtime for a file (NUL sorts before any character a name holds, so the
    strings sort as the names do), about 100 bytes an entry instead of a
    tuple's 200; sorted by :func:`sorted_bounded`, at most ``run`` of them in
    memory.
    """

    def entries() -> Iterator[str]:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    yield entry.name + "/"
                elif after and rel + entry.name <= after:
                    continue
                elif entry.is_file(follow_symlinks=False) and not is_hidden(entry.name):
                    st = entry.stat(follow_symlinks=False)
                    yield f"{entry.name}\0{st.st_size}\0{st.st_mtime!r}"

    try:
        return _unpacked(sorted_bounded(entries(), run))
    except (FileNotFoundError, NotADirectoryError):
        return iter(())


def scan_names(directory: Path, run: int | None = None) -> Iterator[str]:
    """A directory's entries as :func:`scan_sorted` orders them, without a ``stat``: ``name/``
    for a folder, ``name`` for a file (a listing of keys only: at 1.2 million manifest
    objects, 2.8 s of the kernel's time and 1.5 s of Python's less). The folder is read
    before the first name; a file's name ends where scan_sorted's NUL sorts first: the
    same order."""

    def names() -> Iterator[str]:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    yield entry.name + "/"
                elif entry.is_file(follow_symlinks=False) and not is_hidden(entry.name):
                    yield entry.name

    try:
        return sorted_bounded(names(), run)
    except (FileNotFoundError, NotADirectoryError):
        return iter(())


def sorted_bounded(items: Iterable[str], run: int | None = None) -> Iterator[str]:
    """``items`` in sorted order, all of them taken before this returns, holding at most
    ``run`` in memory: each ``run`` is sorted and spilled to a private temporary file
    (unlinked at once, so nothing is left behind by a kill), then the runs are merged a
    slice of each at a time. A folder smaller than ``run`` is sorted in memory, as before.
    ``run`` is :data:`SORT_RUN` unless given. The files go to the system's temporary
    directory (``TMPDIR``); where none is writable, the rest is sorted in memory, with a
    warning."""
    run = SORT_RUN if run is None else run
    chunk: list[str] = []
    spilled: list[IO[bytes]] = []
    try:
        for item in items:
            chunk.append(item)
            if len(chunk) >= run:
                chunk.sort()
                try:
                    spilled.append(_spill(chunk))
                except OSError as exc:  # no writable temporary directory: today's cost
                    log.warning(
                        "listing: cannot spill a large folder's sorted names to a temporary "
                        "file (%s); sorting it in memory (set TMPDIR to a writable folder)",
                        exc,
                    )
                    run = sys.maxsize
                    continue
                chunk = []
    except BaseException:
        for file in spilled:
            file.close()
        raise
    chunk.sort()
    if not spilled:
        return _drained(chunk)
    return heapq.merge(*(_read_back(file) for file in spilled), _drained(chunk))


def _spill(chunk: list[str]) -> IO[bytes]:
    file = tempfile.TemporaryFile(prefix="archiver-list-")  # mode 0600, no name on disk
    for start in range(0, len(chunk), _SLICE):
        pickle.dump(chunk[start : start + _SLICE], file, protocol=pickle.HIGHEST_PROTOCOL)
    file.seek(0)
    return file


def _read_back(file: IO[bytes]) -> Iterator[str]:
    """A spilled run's items, a slice at a time; the file closed at its end (or when the
    merge is let go)."""
    with file:
        while True:
            try:
                piece: list[str] = pickle.load(file)  # noqa: S301 - our own file, unlinked
            except EOFError:
                return
            yield from piece


def _drained(items: list[str]) -> Iterator[str]:
    """``items`` in order, each let go once yielded."""
    items.reverse()
    while items:
        yield items.pop()


def some(items: Iterator[T], most: int = _SLICE) -> list[T]:
    """The next ``most`` of ``items`` (fewer at their end, none after it)."""
    return list(itertools.islice(items, most))


def key_runs(directory: Path, rel: str, prefix: str, most: int = _SLICE) -> Iterator[list[str]]:
    """The keys under ``directory`` (whose key is ``rel``) that start with ``prefix``, in key
    order, in runs of at most ``most`` keys of one folder, depth first (a stack of the
    folders being read); no file is ``stat``-ed."""
    stack = [(directory, rel, scan_names(directory))]
    run: list[str] = []
    while stack:
        folder, base, names = stack[-1]
        for name in names:
            key = base + name
            if not key.endswith("/"):
                if key.startswith(prefix):
                    run.append(key)
                    if len(run) >= most:
                        yield run
                        run = []
            elif key.startswith(prefix) or prefix.startswith(key):
                if run:
                    yield run
                    run = []
                stack.append((folder / name[:-1], key, scan_names(folder / name[:-1])))
                break  # the folder's keys first; this one's resume after
        else:
            stack.pop()
    if run:
        yield run


def _unpacked(entries: Iterator[str]) -> Iterator[tuple[str, bool, int, float]]:
    """The packed entries as tuples."""
    for packed in entries:
        if packed.endswith("/"):
            yield packed[:-1], True, 0, 0.0
        else:
            name, size, mtime = packed.split("\0")
            yield name, False, int(size), float(mtime)


def check_digest(key: str, actual: str, expected: str) -> None:
    """RetriableError unless ``actual`` is the SHA-256 ``expected`` (bytes changed between
    hashing and writing, or hashed elsewhere: a retry may do)."""
    if actual != expected.lower():
        raise RetriableError(f"{key}: SHA-256 mismatch ({actual} != {expected}); nothing written")


def unusable(root: Path, mode: int, min_free: int) -> str | None:
    """Why ``root`` cannot hold objects (None: it is, or was made, a writable directory with
    at least ``min_free`` bytes free)."""
    try:
        make_dirs(root, mode)
        space = os.statvfs(root)
    except OSError as exc:
        return exc.strerror or "not a writable directory"
    # As root, access() ignores file modes but not a read-only mount.
    if space.f_flag & os.ST_RDONLY:
        return "read-only file system"
    if not (root.is_dir() and os.access(root, os.W_OK | os.X_OK)):
        return "not a writable directory"
    free = space.f_bavail * space.f_frsize
    if free < min_free:
        return f"no space left on the device ({free} bytes free)"
    return None


def folder_names(directory: Path) -> list[str]:
    """The names of the folders in ``directory`` (not followed through links), sorted;
    none when it is not there."""
    try:
        with os.scandir(directory) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


# The archiver's own objects, typed as it sends them to S3 (a listing of a million
# manifest keys spent most of its time in ``mimetypes.guess_type``).
_OWN_TYPES = {"jsonl": "application/x-ndjson", "json": "application/json"}


def type_of_key(key: str, audio: Mapping[str, str]) -> str | None:
    """The content type a local object is listed with: by its extension (``audio``: the
    recordings' types), else ``mimetypes``."""
    name = key.rpartition("/")[2]
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    return _OWN_TYPES.get(ext) or audio.get(ext) or mimetypes.guess_type(key, strict=False)[0]


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (it must not exist) with ``data`` and ``mode``, fsynced."""
    with os.fdopen(create_new(path, mode), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def open_regular(path: Path) -> int:
    """A descriptor to read ``path``: never through a symlink, never a FIFO or device.

    O_NONBLOCK keeps a planted FIFO from blocking the open (regular files ignore it).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EINVAL, "not a regular file", str(path))
    return fd


def remove_temp_files(root: Path, older_than: float | None) -> int:
    """Remove temporary files last written before ``older_than`` (epoch seconds; None: all)."""
    removed = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if not is_temp(name):
                continue
            path = Path(dirpath) / name
            try:
                if older_than is not None and path.lstat().st_mtime >= older_than:
                    continue  # still being written, perhaps by another process
            except FileNotFoundError:
                continue  # its writer just published or removed it
            unlink_quiet(path)
            removed += 1
    return removed


def create_opener(mode: int, path: str, flags: int) -> int:
    """An ``open`` opener: a new file with exactly ``mode`` (flags hold O_EXCL)."""
    return create_new(Path(path), mode)


def read_small(path: Path) -> tuple[bytes, str] | None:
    """A small file's bytes and tag (its SHA-256); None if absent.

    Something else at the name (a symlink, a FIFO, a folder) reads as no
    bytes with the tag :data:`NOT_A_FILE`.
    """
    try:
        fd = open_regular(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EINVAL, errno.EISDIR):
            raise
        return b"", NOT_A_FILE
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    return data, hashlib.sha256(data).hexdigest()


def swap_file(final: Path, data: bytes, mode: int, expected: str | None) -> bool:
    """Replace ``final`` by ``data`` only if its tag is still ``expected`` (None: absent).

    The comparison and the rename happen under an exclusive ``flock`` of the
    folder that holds ``final`` (the folder itself: no lock file is left in the
    archive), which every replace in that folder takes: two processes (or
    threads) cannot both pass the comparison on one content. Readers never
    wait: the rename is atomic. False, nothing written, when the tag changed.
    """
    fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        current = read_small(final)
        if (current[1] if current is not None else None) != expected:
            return False
        tmp = temp_path(final)
        try:
            write_new_file(tmp, data, mode)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        finally:
            unlink_quiet(tmp)
        return True
    finally:
        os.close(fd)  # releases the lock
