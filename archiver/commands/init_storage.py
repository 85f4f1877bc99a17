"""``archiver init-storage``: make the storage the archiver wants, or check it is so.

A command of its own, not ``check --fix``: ``check`` is the least-privileged
identity's first command and promises to write nothing outside
``_archiver/``; creating a bucket, enabling versioning and Object Lock and
adding a lifecycle rule take an administrator's rights, once, and change the
bucket for good (versioning and Object Lock cannot be turned off).
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Callable

from archiver.errors import StorageError
from archiver.private_files import dir_mode, make_dirs
from archiver.settings import Settings


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "init-storage",
        help="create the bucket or folder as the archiver wants it, or check it is so",
        description=(
            "S3: creates the bucket if it does not exist (with Object Lock when "
            "ARCHIVER_STORAGE__OBJECT_LOCK_MODE is set), enables versioning, enables Object "
            "Lock on an existing bucket when a lock mode is set, and adds a lifecycle rule "
            "expiring old versions of the running markers under _archiver/running/. Local "
            "directory: creates it, private to its owner. Changes only what differs: "
            "running it again changes nothing. Needs rights the archiver does not otherwise "
            "need (CreateBucket, PutBucketVersioning, PutBucketObjectLockConfiguration, "
            "PutLifecycleConfiguration)."
        ),
    )
    common(p)
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Prepare the storage; one line per step."""
    from archiver.storage import open_store
    from archiver.storage.s3 import S3Store
    from archiver.storage.s3_setup import prepare_bucket

    async with open_store(settings.storage, max_attempts=3) as store:
        if isinstance(store, S3Store):
            lines = await prepare_bucket(store, settings.storage)
            if store.credentials_source:
                lines.append(f"credentials: {store.credentials_source}")
        else:
            lines = [_local_directory(settings)]
    for line in lines:
        print(line)
    return 0


def _local_directory(settings: Settings) -> str:
    root = settings.storage.local_path.absolute()
    mode = dir_mode(settings.storage.file_mode_bits)
    if root.is_dir():
        bits = stat.S_IMODE(root.stat().st_mode)
        if bits & ~mode:
            return (
                f"directory: {root} exists, mode {bits:04o}: wider than {mode:04o} "
                f"(chmod {mode:04o} {root} to keep others out)"
            )
        return f"directory: {root} exists, mode {bits:04o}"
    if root.exists() or root.is_symlink():
        raise StorageError(f"{root}: exists and is not a directory")
    try:
        make_dirs(root, settings.storage.file_mode_bits, durable=True)
    except OSError as exc:
        raise StorageError(f"{root}: cannot create it: {os.strerror(exc.errno or 0)}") from exc
    return f"directory: {root} created, mode {mode:04o}"
