"""``archiver get ID -o FILE`` and ``archiver get ID --url``: compliance retrieval.

From the storage alone (no state database): the local index of the manifests
(built or brought up to date from the storage first, see
:mod:`archiver.commands.finding`) gives the manifest line, checked against its
manifest object; the recording is verified against
it before it is handed over. Every attempt leaves an audit record.

Exit codes: 0 done; 2 bad usage, or an id naming several calls proven in the
chain; 4 no such call; 5 the object is missing or not the manifest's bytes (no
file written), the line is outside the proven chain, or the call's line was cut
(its recording is stored, no proven line names it). A recording gone under a
proven tombstone (``archiver dispose``) is "disposed on D under rule R": exit 4.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archiver.commands.finding import full_listing_age, locate
from archiver.errors import ArchiverError, PlantedLinkError, StorageError, UsageError
from archiver.exits import ExitCode, fail
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import require_archive
from archiver.models import Provider
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.errors import (
    AmbiguousIdError,
    CallNotFoundError,
    IntegrityError,
    IntegrityKind,
)
from archiver.retrieval.fetch import Fetched, fetch_to_file, presigned_url
from archiver.retrieval.orphans import OrphanRule
from archiver.retrieval.tombstones import read_tombstones
from archiver.settings import Settings
from archiver.storage import ObjectStore, open_store


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "get",
        help="retrieve one recording, verified, by sip_call_id or cdr id",
        description="Write a recording to FILE after checking its SHA-256 against the "
        "manifest, or print a time-limited URL to it. Needs only the storage.",
    )
    common(p)
    p.add_argument("id", metavar="ID", help="the call's sip_call_id or cdr id")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument(
        "-o", "--output", metavar="FILE", help="write the recording here (or into this directory)"
    )
    out.add_argument(
        "--url", action="store_true", help="print a presigned URL (S3) or the file's path (local)"
    )
    p.add_argument(
        "--expires",
        type=int,
        metavar="SECONDS",
        help="--url: validity of the URL (default ARCHIVER_STORAGE__PRESIGN_EXPIRY)",
    )
    p.add_argument("--force", action="store_true", help="-o: replace FILE if it exists")
    p.add_argument(
        "--provider",
        choices=[p.value for p in Provider],
        help="only this provider's calls (when one id is known to several)",
    )
    p.set_defaults(handler=run)


def call_target(ident: str, call: ManifestEntry | None = None) -> dict[str, Any]:
    """What an audit record says was asked for (and found)."""
    target: dict[str, Any] = {"id": ident}
    if call is not None:
        target |= {
            "sip_call_id": call.sip_call_id,
            "cdr_id": call.cdr_id,
            "provider": call.provider,
            "object_key": call.object_key,
            "sha256": call.sha256,
            "manifest_key": call.manifest_key,
        }
    return target


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Find the call, then write it or sign a URL; audit either way."""
    expires = args.expires if args.expires is not None else settings.storage.presign_expiry
    if not 1 <= expires <= 7 * 86400:
        raise UsageError("--expires: between 1 and 604800 seconds (7 days)")
    action = "url" if args.url else "get"
    async with open_store(settings.storage, max_connections=4) as store:
        await require_archive(store)
        audit = AuditTrail(store, settings.operator)
        rule = OrphanRule.of(
            settings.storage.key_template, settings.manifest_interval, settings.orphan_margin
        )
        try:
            located = await locate(
                store,
                settings.console.index_path,
                args.id,
                args.provider,
                orphans=rule,
                full_after=full_listing_age(settings.console),
            )
        except CallNotFoundError as exc:
            await audit.record_best_effort(action, call_target(args.id), "not_found")
            return fail(ExitCode.NOT_FOUND, str(exc))
        except AmbiguousIdError as exc:
            await audit.record_best_effort(action, call_target(args.id), "ambiguous")
            return fail(ExitCode.USAGE, str(exc))
        except IntegrityError as exc:
            await audit.record_best_effort(action, call_target(args.id), exc.kind.value)
            return fail(ExitCode.CORRUPT, str(exc))
        call = located.call
        target = call_target(args.id, call)
        if located.refused:
            # A forged line reusing the id (or one cut from the chain) never hides the
            # genuine call: it is served, and the others are named.
            target["refused_lines"] = located.refused
            for why in located.refused:
                print(
                    f"archiver: warning: not served, outside the proven chain: {why}",
                    file=sys.stderr,
                )
        try:
            if args.url:
                return await _url(store, audit, call, target, expires)
            return await _get(store, audit, call, target, Path(args.output), args.force)
        except PlantedLinkError as exc:
            await audit.record_best_effort(action, target, "symlink")
            return fail(ExitCode.CORRUPT, str(exc))


async def _url(
    store: ObjectStore,
    audit: AuditTrail,
    call: ManifestEntry,
    target: dict[str, Any],
    expires: int,
) -> int:
    try:
        signed = await presigned_url(store, call, expires)
    except IntegrityError as exc:
        return await _refused(store, audit, "url", call, target, exc)
    # The URL itself is a bearer secret: the record keeps its lifetime, not the URL.
    details: dict[str, Any] = {"expires_seconds": expires}
    details |= _version_details(signed.version_id, signed.replaced)
    await _record_or_refuse(audit, "url", target, details)
    _warn_replaced(signed.version_id, signed.replaced, "the URL names")
    if signed.version_id is None:
        print(
            "archiver: warning: this URL names no version (the bucket keeps none, or the "
            "line recorded none): it serves whatever is stored under the key when it is "
            f"used, not necessarily the bytes verified now (SHA-256 {call.sha256}); check "
            "what it serves against that, or use -o",
            file=sys.stderr,
        )
    print(signed.url)
    return 0


async def _get(
    store: ObjectStore,
    audit: AuditTrail,
    call: ManifestEntry,
    target: dict[str, Any],
    output: Path,
    force: bool,
) -> int:
    async def publish(fetched: Fetched) -> None:
        details = {"file": str(fetched.path.absolute()), "size": fetched.size}
        details |= _version_details(fetched.version_id, fetched.replaced)
        await _record_or_refuse(audit, "get", target, details)

    try:
        fetched = await fetch_to_file(store, call, output, publish, overwrite=force)
    except IntegrityError as exc:
        return await _refused(store, audit, "get", call, target, exc)
    _warn_replaced(fetched.version_id, fetched.replaced, "wrote")
    print(
        f"{fetched.path}: {fetched.size} bytes, SHA-256 {fetched.sha256} "
        f"verified against {call.manifest_key}"
    )
    return 0


async def _refused(
    store: ObjectStore,
    audit: AuditTrail,
    action: str,
    call: ManifestEntry,
    target: dict[str, Any],
    exc: IntegrityError,
) -> int:
    """A missing recording disposed of under a proven tombstone is not found (4),
    said as such; any other integrity failure is 5."""
    if exc.kind is IntegrityKind.MISSING:
        stone = (await read_tombstones(store)).of(call)
        if stone is not None:
            await audit.record_best_effort(action, target, "disposed", {"rule": stone.rule})
            return fail(
                ExitCode.NOT_FOUND,
                f"{call.describe()} was disposed on {stone.disposed_day} under rule "
                f"{stone.rule} ({stone.reason}, approved by {stone.approved_by})",
            )
    await audit.record_best_effort(action, target, exc.kind.value)
    return fail(ExitCode.CORRUPT, str(exc))


def _version_details(version_id: str | None, replaced: str | None) -> dict[str, Any]:
    if version_id is None:
        return {}
    return {"version_id": version_id, "current_object": replaced}


def _warn_replaced(version_id: str | None, replaced: str | None, verb: str) -> None:
    """Say, on stderr, that the current object was not the archived one."""
    if version_id is not None and replaced is not None:
        print(
            f"archiver: warning: the current object is not the archived recording ({replaced}); "
            f"{verb} its archived version {version_id}, which matches the manifest. "
            "Run archiver verify.",
            file=sys.stderr,
        )


async def _record_or_refuse(
    audit: AuditTrail, action: str, target: dict[str, Any], details: dict[str, Any]
) -> None:
    """Write the audit record; a retrieval that cannot be recorded does not happen."""
    try:
        await audit.record(action, target, "ok", details)
    except ArchiverError as exc:
        raise StorageError(f"the audit record cannot be written, nothing retrieved: {exc}") from exc
