"""``archiver hold ID --on|--off``: a legal hold on one recording (S3 Object Lock).

A legal hold keeps the object's version from deletion until it is turned off,
whatever its retention date. Without ``--on``/``--off`` the command shows the
recording's retention and hold. Changes are recorded in the audit trail.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from archiver.commands.finding import find_call, full_listing_age
from archiver.commands.get import call_target
from archiver.errors import ArchiverError, StorageError
from archiver.exits import ExitCode, fail
from archiver.manifest.reader import require_archive
from archiver.models import Provider
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.errors import AmbiguousIdError, CallNotFoundError, IntegrityError
from archiver.retrieval.fetch import archived_version, storage_key
from archiver.settings import Settings
from archiver.storage import LockingStore, ObjectProtection, open_store


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "hold",
        help="set, clear or show the legal hold of one recording (S3 Object Lock)",
        description="Without --on/--off: show the recording's retention and legal hold.",
    )
    common(p)
    p.add_argument("id", metavar="ID", help="the call's sip_call_id or cdr id")
    switch = p.add_mutually_exclusive_group()
    switch.add_argument("--on", dest="hold", action="store_const", const=True, help="set the hold")
    switch.add_argument(
        "--off", dest="hold", action="store_const", const=False, help="clear the hold"
    )
    p.add_argument(
        "--provider",
        choices=[p.value for p in Provider],
        help="only this provider's calls (when one id is known to several)",
    )
    p.set_defaults(handler=run, hold=None)


def describe(key: str, protection: ObjectProtection) -> str:
    """One line: the object's retention and legal hold."""
    if protection.mode is not None and protection.retain_until is not None:
        retention = f"retention {protection.mode} until {protection.retain_until.isoformat()}"
    else:
        retention = "no retention"
    version = f" (version {protection.version_id})" if protection.version_id else ""
    hold = "ON" if protection.legal_hold else "OFF"
    return f"{key}{version}: legal hold {hold}, {retention}"


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Resolve the id, then show or change the hold."""
    async with open_store(settings.storage, max_connections=4) as store:
        if not isinstance(store, LockingStore):
            return fail(
                ExitCode.USAGE,
                f"legal holds need S3 Object Lock; {store.description} is a local directory",
            )
        bucket = await store.bucket_protection()
        if not bucket.object_lock:
            return fail(
                ExitCode.USAGE,
                f"{store.description}: the bucket has no Object Lock, so it cannot hold objects "
                "(Object Lock is chosen when a bucket is created)",
            )
        await require_archive(store)
        audit = AuditTrail(store, settings.operator)
        action = "hold-show" if args.hold is None else ("hold-on" if args.hold else "hold-off")
        try:
            call = await find_call(
                store,
                settings.console.index_path,
                args.id,
                args.provider,
                full_after=full_listing_age(settings.console),
            )
        except CallNotFoundError as exc:
            await audit.record_best_effort(action, call_target(args.id), "not_found")
            return fail(ExitCode.NOT_FOUND, str(exc))
        except AmbiguousIdError as exc:
            return fail(ExitCode.USAGE, str(exc))
        except IntegrityError as exc:
            return fail(ExitCode.CORRUPT, str(exc))
        key = storage_key(store, call)
        # The hold goes on the version holding the archived bytes, not on whatever
        # may have been written over it since.
        version = await archived_version(store, key, call, trust_single=True)
        if version is None:
            await audit.record_best_effort(action, call_target(args.id, call), "missing")
            return fail(
                ExitCode.CORRUPT,
                f"missing: no version of {key} holds the archived bytes (run archiver verify)",
            )
        if args.hold is not None:
            try:
                await store.set_legal_hold(key, args.hold, version)
            except KeyError:
                await audit.record_best_effort(action, call_target(args.id, call), "missing")
                return fail(ExitCode.CORRUPT, f"missing: {key} (version {version}) is gone")
            try:
                details = {"version_id": version}
                await audit.record(action, call_target(args.id, call), "ok", details)
            except ArchiverError as exc:
                state = "set" if args.hold else "cleared"
                raise StorageError(
                    f"legal hold {state} on {key}, but its audit record cannot be written: {exc}"
                ) from exc
        protection = await store.protection(key, version)
        if protection is None:
            return fail(ExitCode.CORRUPT, f"missing: {key} (version {version}) is gone")
        print(describe(key, protection))
    return 0
