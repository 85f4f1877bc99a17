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
import mimetypes
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from archiver.errors import RetriableError
from archiver.private_files import create_new, fsync_dir, make_dirs

TEMP_SUFFIX = ".partial"
HASH_CHUNK = 1024 * 1024
# The tag of something at a key that is not a regular file (a planted symlink, a
# FIFO): no object of ours, so a conditional replace may put the object in its place.
NOT_A_FILE = "not-a-regular-file"


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
    directory: Path, rel: str = "", after: str = ""
) -> Iterator[tuple[str, bool, int, float]]:
    """(name, is_dir, size, mtime) of a directory's entries, in the order of the keys they hold.

    A directory sorts as ``name/``, so ``a.txt`` (``.`` < ``/``) comes before
    the keys in ``a/``: a depth-first walk then yields keys in plain string
    order, the order S3 lists them in. Files whose key (``rel`` + name) is not
    after ``after`` are left out unread (a chain's newest links, not its
    million old ones, each a ``stat``).

    The whole folder is read (and each file ``stat``-ed) before the first entry,
    as one sorted list of one string an entry: ``name/`` for a directory,
    ``name``, NUL, size, NUL, mtime for a file (NUL sorts before any character a
    name holds, so the strings sort as the names do), about 100 bytes an entry
    instead of a tuple's 200 (a chain folder of 600,000 links: 57 MiB, not 115).
    """
    entries: list[str] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    entries.append(entry.name + "/")
                elif after and rel + entry.name <= after:
                    continue
                elif entry.is_file(follow_symlinks=False) and not is_hidden(entry.name):
                    st = entry.stat(follow_symlinks=False)
                    entries.append(f"{entry.name}\0{st.st_size}\0{st.st_mtime!r}")
    except (FileNotFoundError, NotADirectoryError):
        entries = []
    entries.sort()
    return _unpacked(entries)


def scan_names(directory: Path) -> list[str]:
    """A directory's entries as :func:`scan_sorted` orders them, without a ``stat``: ``name/``
    for a folder, ``name`` for a file (a listing of keys only: at 1.2 million manifest
    objects, 2.8 s of the kernel's time and 1.5 s of Python's less)."""
    names: list[str] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    names.append(entry.name + "/")
                elif entry.is_file(follow_symlinks=False) and not is_hidden(entry.name):
                    names.append(entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    names.sort()  # a file's name ends where scan_sorted's NUL sorts first: the same order
    return names


def key_runs(directory: Path, rel: str, prefix: str) -> Iterator[list[str]]:
    """The keys under ``directory`` (whose key is ``rel``) that start with ``prefix``, in key
    order, a run of one folder's files at a time, depth first (a stack of the folders
    being read); no file is ``stat``-ed."""
    stack = [(directory, rel, iter(scan_names(directory)))]
    run: list[str] = []
    while stack:
        folder, base, names = stack[-1]
        for name in names:
            key = base + name
            if not key.endswith("/"):
                if key.startswith(prefix):
                    run.append(key)
            elif key.startswith(prefix) or prefix.startswith(key):
                if run:
                    yield run
                    run = []
                stack.append((folder / name[:-1], key, iter(scan_names(folder / name[:-1]))))
                break  # the folder's keys first; this one's resume after
        else:
            stack.pop()
    if run:
        yield run


def _unpacked(entries: list[str]) -> Iterator[tuple[str, bool, int, float]]:
    """The packed entries as tuples, each let go once yielded."""
    entries.reverse()
    while entries:
        packed = entries.pop()
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
