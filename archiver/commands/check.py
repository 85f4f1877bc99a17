"""``archiver check``: the first command on a new deployment.

Validates the settings, makes one small request to the source, checks the
storage is reachable and writable (writing only under ``_archiver/``), and says
what it found.
"""

from __future__ import annotations

import argparse
import hashlib
import uuid
from collections.abc import Callable

from archiver.errors import ArchiverError
from archiver.http import ApiClient, make_session
from archiver.settings import Settings
from archiver.sources import make_source


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser("check", help="validate settings, reach the source and the storage")
    common(p)
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Check each part in turn; the first failure raises and ends the check."""
    from archiver.commands.runtime import validate_settings

    validate_settings(settings)
    print("settings: OK")
    async with make_session(settings.source) as session:
        source = make_source(settings.source, ApiClient(session, settings.source))
        print(f"source: OK: {await source.probe()}")
    print(f"storage: OK: {await check_storage(settings)}")
    print(f"protection: {await check_protection(settings)}")
    return 0


async def check_storage(settings: Settings) -> str:
    """Write, read back and delete a small object under ``_archiver/check/``."""
    from archiver.storage import open_store

    key = f"_archiver/check/{uuid.uuid4().hex}"
    data = b"archiver check\n"
    digest = hashlib.sha256(data).hexdigest()
    async with open_store(settings.storage) as store:
        await store.put_bytes(key, data, sha256=digest, content_type="text/plain")
        try:
            got = b"".join([chunk async for chunk in store.read(key)])
            if got != data:
                raise ArchiverError(f"storage {store.description}: read back other bytes")
        finally:
            await store.delete(key)
        return f"{store.description} is reachable and writable"


async def check_protection(settings: Settings) -> str:
    """Versioning and Object Lock of the bucket; ConfigError for retention it cannot honour."""
    from archiver.storage import LockingStore, open_store
    from archiver.storage.protection import assess

    async with open_store(settings.storage) as store:
        if not isinstance(store, LockingStore):
            return "a local directory: no versioning, Object Lock, legal holds or encryption"
        try:
            bucket = await store.bucket_protection()
        except ArchiverError as exc:
            if settings.storage.object_lock_mode is not None:
                raise
            # Reading them needs permissions the archiver does not otherwise need.
            return f"unknown ({exc})"
        return assess(settings.storage, bucket)
