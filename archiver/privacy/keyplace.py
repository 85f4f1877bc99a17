"""The key place: a private local folder holding the search key and one key per subject.

Layout (``ARCHIVER_PRIVACY__KEYS``, a folder 0700 on a disk the operator can
wipe; never the archive's bucket, whose Object Lock would keep a key for years)::

    search.key                 the HMAC-SHA256 key of the keyed hashes (64 hex digits)
    subjects/<keyed hash>.key  one number's AES-256-GCM key (64 hex digits)

A subject's file is named by the number's keyed hash, never by the number.
Like the witness key, a folder or key file others may read or write is
refused: whoever read the search key could test guessed numbers against every
line. Keys are created once (write, fsync, then a hard link that fails if
another writer won: both then use the winner's key); erasure overwrites and
removes a subject's file. Errors name the place and the problem, never a key.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from archiver.errors import ConfigError
from archiver.privacy.crypto import KEY_BYTES
from archiver.private_files import create_new, fsync_dir, make_dirs

SEARCH_KEY = "search.key"
SUBJECTS = "subjects"
_HASH = re.compile(r"[0-9a-f]{64}")
_SETTING = "ARCHIVER_PRIVACY__KEYS"


class KeyPlace:
    """The keys of one key place; every read checks the file's permissions."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def open(cls, root: Path, *, create: bool) -> KeyPlace:
        """The key place at ``root``; ``create``: make the folder (0700) if missing.

        ConfigError, one line, when the folder is missing (and not to be made),
        is not a folder, or is open to other accounts.
        """
        if not root.exists() and create:
            make_dirs(root / SUBJECTS, 0o600, durable=True)
        try:
            status = root.lstat()
        except OSError as exc:
            raise ConfigError(f"{_SETTING} {root}: {exc.strerror or 'not readable'}") from None
        if not stat.S_ISDIR(status.st_mode):
            raise ConfigError(f"{_SETTING} {root}: not a folder")
        _private(root, status.st_mode, "chmod 700 it")
        place = cls(root)
        subjects = root / SUBJECTS
        if subjects.is_dir():
            _private(subjects, subjects.lstat().st_mode, "chmod 700 it")
        elif create:
            make_dirs(subjects, 0o600, durable=True)
        return place

    def search_key(self, *, create: bool) -> bytes | None:
        """The search key; created when missing and ``create`` (None when missing)."""
        return self._key(self.root / SEARCH_KEY, create=create)

    def subject_key(self, number_hash: str, *, create: bool) -> bytes | None:
        """The key of the number whose keyed hash is ``number_hash`` (None: none, or erased)."""
        return self._key(self._subject_path(number_hash), create=create)

    def has_subject(self, number_hash: str) -> bool:
        """Whether the number's key is still there."""
        return self._subject_path(number_hash).exists()

    def destroy(self, number_hash: str) -> bool:
        """Overwrite, then remove the number's key (True: there was one).

        The overwrite is best effort (a copy-on-write or flash disk may keep old
        blocks): backups and snapshots of the key place must age out too.
        """
        path = self._subject_path(number_hash)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ConfigError(f"{_SETTING}: cannot erase a subject key ({exc.strerror})") from None
        try:
            os.write(fd, b"0" * (2 * KEY_BYTES) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        fsync_dir(path.parent)
        return True

    def _subject_path(self, number_hash: str) -> Path:
        if not _HASH.fullmatch(number_hash):
            raise ValueError("not a keyed hash")
        return self.root / SUBJECTS / f"{number_hash}.key"

    def _key(self, path: Path, *, create: bool) -> bytes | None:
        try:
            return _read_key(path)
        except FileNotFoundError:
            if not create:
                return None
        return self._create(path)

    def _create(self, path: Path) -> bytes:
        """A new random key at ``path``, or the one another writer made first."""
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = create_new(temporary, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES).hex().encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another writer's key won: use it
        finally:
            temporary.unlink()
        fsync_dir(path.parent)
        return _read_key(path)


def _private(path: Path, mode: int, fix: str) -> None:
    if mode & 0o077:
        raise ConfigError(
            f"{_SETTING} {path}: open to other accounts (mode {stat.S_IMODE(mode):o}): "
            f"{fix}, and treat its keys as exposed"
        )


def _read_key(path: Path) -> bytes:
    """A key file's key; FileNotFoundError when missing, ConfigError when unusable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"{_SETTING} {path}: {exc.strerror or 'not readable'}") from None
    try:
        _private(path, os.fstat(fd).st_mode, "chmod 600 it")
        raw = os.read(fd, 4 * KEY_BYTES)
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{_SETTING} {path}: not a key file ({2 * KEY_BYTES} hex digits)")
    return key
