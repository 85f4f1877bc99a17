"""``archiver case``: an auditor's cases from the command line, and their evidence packages.

    archiver case open --reference REF --reason WHY
    archiver case add CASE ID [ID ...]
    archiver case list [--format table|json]
    archiver case show CASE
    archiver case export CASE -o FILE.zip [--force]

Cases live in the archive (``_archiver/cases/``), so the console sees the same
ones. ``export`` writes the case's evidence package: the recordings, the
manifest objects and chain links that prove them, the timestamps, and a
verifier a third party runs without the archiver (see
:mod:`archiver.retrieval.evidence`). Every step leaves an audit record.

Exit codes: 0 done; 2 bad usage (a blank reference, an unknown case id form);
4 no such case or call; 5 a recording or its manifest is not proven (no
package written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from archiver.commands.finding import find_call, full_listing_age
from archiver.errors import UsageError
from archiver.exits import ExitCode, fail
from archiver.manifest.reader import require_archive
from archiver.privacy.lines import opener_of
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.cases import Case, add_calls, list_cases, load_case, open_case
from archiver.retrieval.errors import AmbiguousIdError, CallNotFoundError, IntegrityError
from archiver.retrieval.evidence import Proof, covering, gather_proof, write_package
from archiver.settings import Settings
from archiver.storage import ObjectStore, open_store
from archiver.witness.keys import load_verifiers
from archiver.witness.place import read_checkpoints, read_note


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "case",
        help="open cases, add calls, export a case's evidence package",
        description="Cases (a complaint, an inspection) kept in the archive, as the console "
        "keeps them; `export` writes an evidence package a third party checks without the "
        "archiver (its VERIFY.txt says how).",
    )
    common(p)
    p.add_argument("action", choices=["open", "add", "list", "show", "export"])
    p.add_argument("case", nargs="?", metavar="CASE", help="the case id (add, show, export)")
    p.add_argument("ids", nargs="*", metavar="ID", help="add: sip_call_ids or cdr ids")
    p.add_argument("--reference", help="open: the complaint or inspection number")
    p.add_argument("--reason", help="open: why the case is opened")
    p.add_argument("-o", "--output", metavar="FILE", help="export: the ZIP to write")
    p.add_argument("--force", action="store_true", help="export: replace FILE if it exists")
    p.add_argument("--format", choices=["table", "json"], default="table", help="list")
    p.add_argument(
        "--witness",
        metavar="PLACE",
        help="export: where the auditor's witnessed checkpoints are (a folder, a file, an "
        "s3:// prefix); the newest one the calls' chains pass through goes into the package",
    )
    p.add_argument(
        "--witness-key",
        action="append",
        metavar="KEY",
        help="export: the witness's verifier key (NAME+ID+BASE64, or a file of them)",
    )
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Do the action."""
    async with open_store(settings.storage, max_connections=8) as store:
        await require_archive(store)
        audit = AuditTrail(store, settings.operator)
        if args.action == "open":
            if not args.reference or not args.reason:
                raise UsageError("case open: --reference and --reason are required")
            try:
                case = await open_case(store, audit.operator, args.reference, args.reason)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            await audit.record("case-open", {"case": case.id}, "ok", case.summary())
            print(case.id)
            return 0
        if args.action == "list":
            cases = await list_cases(store)
            if args.format == "json":
                print(json.dumps([c.summary() for c in cases], ensure_ascii=False, indent=1))
            for c in cases if args.format == "table" else []:
                print(f"{c.id}\t{c.opened_at[:19]}\t{c.opened_by}\t{len(c.calls)}\t{c.reference}")
            return 0
        if not args.case:
            raise UsageError(f"case {args.action}: CASE is required")
        found = await load_case(store, args.case)
        if found is None:
            return fail(ExitCode.NOT_FOUND, f"no such case: {args.case}")
        if args.action == "show":
            print(
                json.dumps({**found.summary(), "calls": found.calls}, ensure_ascii=False, indent=1)
            )
            return 0
        if args.action == "add":
            return await _add(store, settings, audit, found, args.ids)
        target = _target(args.output, args.force)
        if args.witness and not args.witness_key:
            raise UsageError("case export --witness needs --witness-key (the witness's key)")
        return await _export(store, settings, audit, found, target, args)


async def _add(
    store: ObjectStore, settings: Settings, audit: AuditTrail, case: Case, ids: list[str]
) -> int:
    if not ids:
        raise UsageError("case add: name at least one call (sip_call_id or cdr id)")
    found = []
    for ident in ids:
        try:
            age = full_listing_age(settings.console)
            call = await find_call(store, settings.console.index_path, ident, full_after=age)
        except CallNotFoundError as exc:
            return fail(ExitCode.NOT_FOUND, str(exc))
        except AmbiguousIdError as exc:
            return fail(ExitCode.USAGE, str(exc))
        except IntegrityError as exc:
            return fail(ExitCode.CORRUPT, str(exc))
        found.append(f"{call.provider}:{call.cdr_id}")
    try:
        added = await add_calls(store, case, audit.operator, found)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    await audit.record("case-add", {"case": case.id, "calls": found}, "ok", {"added": added})
    print(f"{case.id}: {added} call(s) added, {len(case.calls)} in the case")
    return 0


async def _witnessed(
    settings: Settings, proof: Proof, place: str, keys: list[str]
) -> dict[str, bytes]:
    """The newest witnessed checkpoint the package's chains pass through, and the key."""
    verifiers = load_verifiers(keys)
    found = await read_checkpoints(place, settings.storage, verifiers)
    for checkpoint in reversed(found.checkpoints):
        if covering(checkpoint, proof.chains):
            note = await read_note(place, settings.storage, checkpoint.name)
            vkey = "".join(f"{v.vkey()}\n" for v in verifiers)
            return {f"checkpoints/{checkpoint.name}": note, "witness.vkey": vkey.encode()}
    print(
        "archiver: warning: no witnessed checkpoint at --witness covers these calls' links: "
        "the package proves them up to the head only (run archiver witness checkpoint, then "
        "export again)",
        file=sys.stderr,
    )
    return {}


def _target(output: str | None, force: bool) -> Path:
    if not output:
        raise UsageError("case export: -o FILE.zip is required")
    target = Path(output)
    if target.exists() and not force:
        raise UsageError(f"{target} exists: give --force to replace it")
    return target


def _ca(settings: Settings) -> bytes | None:
    """The timestamp authority's certificate(s), for the package's openssl check."""
    path = settings.timestamp.ca_bundle
    return None if path is None else path.read_bytes()


async def _export(
    store: ObjectStore,
    settings: Settings,
    audit: AuditTrail,
    case: Case,
    target: Path,
    args: argparse.Namespace,
) -> int:
    if not case.calls:
        raise UsageError(f"case {case.id} holds no call yet: nothing to export")
    calls = []
    for named in case.calls:
        provider, _, cdr_id = named.partition(":")
        try:
            age = full_listing_age(settings.console)
            path = settings.console.index_path
            calls.append(await find_call(store, path, cdr_id, provider, full_after=age))
        except (CallNotFoundError, AmbiguousIdError, IntegrityError) as exc:
            await audit.record_best_effort("case-export", {"case": case.id}, "refused")
            code = ExitCode.NOT_FOUND if isinstance(exc, CallNotFoundError) else ExitCode.CORRUPT
            return fail(code, f"{named}: {exc}")
    header = {
        **case.summary(),
        "calls": case.calls,
        "history": case.history,
        "packaged_by": audit.operator,
        "packaged_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        proof = await gather_proof(store, calls)
    except IntegrityError as exc:
        await audit.record_best_effort("case-export", {"case": case.id}, exc.kind.value)
        return fail(ExitCode.CORRUPT, str(exc))
    extra: dict[str, bytes] = {}
    if args.witness:
        extra = await _witnessed(settings, proof, args.witness, args.witness_key)
    tmp = target.with_name(f".{target.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:

            async def send(data: bytes) -> None:
                out.write(data)

            # The package's index shows sealed numbers opened (ARCHIVER_PRIVACY__KEYS);
            # its manifest objects are the archive's, as written.
            opener = opener_of(settings.privacy)
            opened = [opener.entry(call) for call in calls]
            count = await write_package(
                store, opened, header, send, tsa_ca=_ca(settings), proof=proof, extra=extra
            )
        tmp.replace(target)
    except IntegrityError as exc:
        tmp.unlink(missing_ok=True)
        await audit.record_best_effort("case-export", {"case": case.id}, exc.kind.value)
        return fail(ExitCode.CORRUPT, str(exc))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    await audit.record("case-export", {"case": case.id, "calls": case.calls}, "ok", header)
    print(f"{target}: {count} recording(s) with their proof; VERIFY.txt inside says how to check")
    return 0
