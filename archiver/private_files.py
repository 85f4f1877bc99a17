"""Files and folders the archiver creates: private (0600 and 0700) unless configured.

Recordings, manifests and the state database name people and their numbers; a
process umask of 022 would leave them readable by every account on the machine.
Their modes are therefore set explicitly here, whatever the umask, and a folder
gets the file mode plus search (x) wherever the mode grants read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_FILE_MODE = "0600"
MODE_PATTERN = r"^0?[0-7]{3}$"
_MODE = re.compile(MODE_PATTERN)


def parse_mode(text: str) -> int:
    """``"0600"`` or ``"640"`` -> the permission bits (ValueError otherwise)."""
    if not _MODE.fullmatch(text):
        raise ValueError(f"not an octal file mode such as 0600: {text!r}")
    return int(text, 8)


def dir_mode(file_mode: int) -> int:
    """The mode of a folder holding files of ``file_mode``: 0600 -> 0700, 0640 -> 0750."""
    return file_mode | ((file_mode & 0o444) >> 2)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new link, a new subdirectory) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path, file_mode: int, *, durable: bool = False) -> None:
    """Create ``path`` and its missing parents with :func:`dir_mode` (existing ones
    are left as they are); ``durable``: fsync each parent that gained an entry."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    mode = dir_mode(file_mode)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            continue  # a concurrent writer made it first
        os.chmod(directory, mode)  # mkdir's mode is masked by the umask
        if durable:
            fsync_dir(directory.parent)


def create_new(path: Path, file_mode: int) -> int:
    """Create ``path`` (it must not exist, and is never a symlink followed) with
    exactly ``file_mode``; returns the open descriptor, for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, file_mode)
    try:
        os.fchmod(fd, file_mode)  # os.open's mode is masked by the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure_private_file(path: Path, file_mode: int) -> None:
    """Create an empty ``path`` with ``file_mode`` if it does not exist (an existing
    file keeps its mode: the operator may have chosen it)."""
    try:
        fd = create_new(path, file_mode)
    except FileExistsError:
        return
    os.close(fd)
