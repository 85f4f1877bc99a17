"""``archiver check``: the first command on a new deployment.

Validates the settings, makes one small request to the source, checks the
storage is reachable and writable (writing only under ``_archiver/``), and says
what it found.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from archiver.errors import ArchiverError, ConfigError, StorageError
from archiver.exits import ExitCode
from archiver.http import ApiClient, make_session
from archiver.models import Provider
from archiver.settings import Settings, SourceSettings, require_source
from archiver.sources import make_source


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser("check", help="validate settings, reach the source and the storage")
    common(p)
    p.set_defaults(handler=run)


# Each part gets this long, whatever its own retries would allow: a dead source
# must not hide the state of the storage behind minutes of backoff.
PART_TIMEOUT = 15.0
CHECK_AREA = "_archiver/check/"


@dataclass
class Findings:
    """What ``check`` found wrong, part by part; the exit code follows the worst."""

    code: int = ExitCode.OK
    problems: list[str] = field(default_factory=list)

    def problem(self, part: str, message: str, code: int) -> None:
        """Report one problem of ``part`` at once, on its own line of stderr."""
        self.problems.append(message)
        if self.code != ExitCode.USAGE:  # a settings problem decides the exit code
            self.code = code
        # The parts' lines stay in order on a terminal showing both streams.
        sys.stdout.flush()
        print(f"archiver: {part}: {message}", file=sys.stderr, flush=True)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Check every part (settings, source, storage, state), each with a short timeout:
    one line per part, what is fine on stdout, each problem on stderr."""
    if not args.verbose:
        # The report names what failed; each retry's warning would only bury it.
        logging.getLogger("archiver.http").setLevel(logging.ERROR)
    found = Findings()
    source_ready = _check_settings(settings, found)
    if source_ready:
        await _part("source", found, _probe_source(settings))
    await _part("storage", found, check_storage(settings))
    await _part("protection", found, check_protection(settings))
    if settings.state.is_postgres:
        await _part("state", found, check_postgres_state(settings))
    else:
        _check_state(settings, found)
    return found.code


def _check_settings(settings: Settings, found: Findings) -> bool:
    """The settings no model can check alone; True if the source can be probed."""
    from archiver.commands.runtime import validate_settings

    source_ready = True
    try:
        require_source(settings.source)
    except ConfigError as exc:
        found.problem("settings", f"configuration error: {exc}", ExitCode.USAGE)
        source_ready = False
    try:
        validate_settings(settings.model_copy(update={"source": _any_source()}))
    except ConfigError as exc:
        found.problem("settings", f"configuration error: {exc}", ExitCode.USAGE)
    if not found.problems:
        print("settings: OK")
    _check_retention(settings, found)
    _check_privacy(settings, found)
    return source_ready


def _check_retention(settings: Settings, found: Findings) -> None:
    """The retention schedule, read as ``dispose`` and ``run`` read it: a bad rules file
    is a settings problem (exit 2), found now rather than at the first disposition."""
    from archiver.manifest.retention import load_schedule

    codes = {code: str(meaning) for code, meaning in settings.source.direction_codes.items()}
    try:
        schedule = load_schedule(
            settings.retention.rules_file, settings.storage.retention_days, codes
        )
    except ConfigError as exc:
        found.problem("retention", f"configuration error: {exc}", ExitCode.USAGE)
        return
    days = schedule.default_days
    default = (
        f"default rule {days} day(s)"
        if days
        else "no default rule (a recording no rule matches is kept)"
    )
    source = settings.retention.rules_file
    where = f" from {source}" if source is not None else " (ARCHIVER_RETENTION__RULES_FILE unset)"
    print(f"retention: OK: {len(schedule.rules)} rule(s){where}, {default}")


def _check_privacy(settings: Settings, found: Findings) -> None:
    """The key place of sealed phone numbers, when set: private, and not in the archive
    (whose copies and locks would outlive a destroyed key). Creates nothing."""
    from archiver.privacy.keyplace import SUBJECTS, KeyPlace

    root = settings.privacy.keys
    if root is None:
        return
    archive = None if settings.storage.is_s3 else settings.storage.local_path
    if archive is not None and root.resolve().is_relative_to(archive.resolve()):
        found.problem(
            "privacy",
            f"ARCHIVER_PRIVACY__KEYS {root}: inside the archive's folder: "
            "keep the keys where an erasure can destroy them",
            ExitCode.USAGE,
        )
        return
    if not root.exists():
        print(f"privacy: OK: key place {root} not made yet (the first run makes it, 0700)")
        return
    try:
        place = KeyPlace.open(root, create=False)
        search = place.search_key(create=False)
    except ConfigError as exc:
        found.problem("privacy", f"configuration error: {exc}", ExitCode.USAGE)
        return
    subjects = root / SUBJECTS
    count = sum(1 for p in subjects.glob("*.key")) if subjects.is_dir() else 0
    state = "a search key" if search is not None else "no search key yet"
    print(f"privacy: OK: key place {root}: {state}, {count} subject key(s)")


def _any_source() -> SourceSettings:
    # validate_settings checks the source first; it was checked on its own above.
    return SourceSettings(
        kind=Provider.CDR_V2, base_url="http://source.invalid", token=SecretStr("t")
    )


async def _part(name: str, found: Findings, check: Coroutine[Any, Any, str]) -> None:
    try:
        async with asyncio.timeout(PART_TIMEOUT):
            print(f"{name}: {await check}")
    except TimeoutError:
        found.problem(name, f"did not answer within {PART_TIMEOUT:.0f} s", ExitCode.FATAL)
    except ConfigError as exc:
        found.problem(name, f"configuration error: {exc}", ExitCode.USAGE)
    except ArchiverError as exc:
        found.problem(name, str(exc), ExitCode.FATAL)


async def _probe_source(settings: Settings) -> str:
    """One small request, with few and short retries (check answers in seconds)."""
    quick = settings.source.model_copy(
        update={
            "max_attempts": min(settings.source.max_attempts, 2),
            "max_backoff": 1.0,
            "connect_timeout": min(settings.source.connect_timeout, 5.0),
            "read_timeout": min(settings.source.read_timeout, 10.0),
        }
    )
    async with make_session(quick) as session:
        source = make_source(quick, ApiClient(session, quick))
        return f"OK: {await source.probe()}"


def _check_state(settings: Settings, found: Findings) -> None:
    """The state database can be opened, or created where it is asked to be (nothing written)."""
    try:
        path = settings.state.path
    except ConfigError:
        return  # a state URL that is not SQLite: reported with the settings
    where = path.absolute()
    if path.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"{where.as_uri()}?mode=ro", uri=True)) as db:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            found.problem(
                "state", f"{where} is not a usable SQLite database: {exc}", ExitCode.FATAL
            )
            return
        print(f"state: OK: {where}")
    elif where.parent.is_dir() and os.access(where.parent, os.W_OK | os.X_OK):
        print(f"state: OK: {where} (created by the first backfill or run)")
    else:
        found.problem("state", f"cannot create {where}: no such folder, or not writable", 1)


async def check_postgres_state(settings: Settings) -> str:
    """The PostgreSQL state answers, read-only (nothing created or migrated)."""
    from archiver.state import describe_state, open_state_read_only

    where = describe_state(settings.state)
    async with open_state_read_only(settings.state) as state:
        if state is None:
            return f"OK: {where} (its schema is created by the first backfill or run)"
        await state.reports.counts()
    return f"OK: {where}"


async def check_storage(settings: Settings) -> str:
    """The bucket exists (asked before anything is written: some servers create a
    bucket on the first write), then write, read back and delete a small object
    under ``_archiver/check/``; a folder made for it is removed again."""
    from archiver.storage import LocalStore, open_store

    key = f"{CHECK_AREA}{uuid.uuid4().hex}"
    data = b"archiver check\n"
    digest = hashlib.sha256(data).hexdigest()
    # Few attempts: an error that will not pass (a certificate refused) is named
    # within the part's timeout instead of being retried past it.
    async with open_store(settings.storage, max_attempts=2) as store:
        if isinstance(store, LocalStore):
            if not store.root.is_dir():
                return await _no_local_directory(store)
            made = [
                f for f in (store.root / "_archiver", store.root / CHECK_AREA) if not f.exists()
            ]
        else:
            await _probe_bucket(store)
            made = []
        try:
            await store.put_bytes(key, data, sha256=digest, content_type="text/plain")
            try:
                got = b"".join([chunk async for chunk in store.read(key)])
                if got != data:
                    raise ArchiverError(f"{store.description}: read back other bytes")
            finally:
                await store.delete(key)
        finally:
            for folder in reversed(made):
                with contextlib.suppress(OSError):  # not empty: another process's
                    folder.rmdir()
        signed = getattr(store, "credentials_source", None)
        with_keys = f", with {signed}" if signed else ""
        return f"OK: {store.description} is reachable and writable{with_keys}"


async def _probe_bucket(store: Any) -> None:
    """HeadBucket: names a missing bucket (and how to make it) instead of writing into it."""
    try:
        await store.probe()
    except StorageError as exc:
        if "does not exist" in str(exc):
            raise StorageError(f"{exc} (create it with 'archiver init-storage')") from exc
        raise


async def _no_local_directory(store: Any) -> str:
    """A local directory that does not exist yet: fine if it can be created there."""
    root = store.root
    parent = next((p for p in root.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise StorageError(f"{root}: cannot be created: {parent} is not a directory")
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        raise StorageError(f"{root}: does not exist and cannot be created ({parent} not writable)")
    return f"OK: {root} does not exist yet; 'archiver init-storage' or the first write creates it"


async def check_protection(settings: Settings) -> str:
    """Versioning and Object Lock of the bucket; ConfigError for retention it cannot honour."""
    from archiver.storage import LockingStore, open_store
    from archiver.storage.protection import assess

    async with open_store(settings.storage, max_attempts=2) as store:
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
