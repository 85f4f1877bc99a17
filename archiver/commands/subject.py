"""``archiver subject --phone N``: a data subject's request (access, export, erasure).

Finds every archived call of the number, on either side and in any spelling
(``search``'s phone comparison), as a report; ``--export FILE.zip`` writes
them as ``archiver export`` does (the same proofs, limits and audit records);
``--erase --approved-by NAME`` deletes each one no rule of legal obligation
(``legal = true`` in the schedule), legal hold or Object Lock date keeps, with
a chained tombstone (reason ``erasure``), and names the reason for each one
refused. Every request and its outcome is an audit record (``subject``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archiver.commands.dispose import approver_of, finish_chain
from archiver.commands.time_range import add_range, parse_range
from archiver.errors import UsageError
from archiver.exits import ExitCode
from archiver.manifest.reader import require_archive
from archiver.manifest.retention import Due, load_schedule
from archiver.manifest.rollup_read import read_manifests
from archiver.privacy.erasure import shred
from archiver.privacy.lines import Opener, opener_of
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.disposition import Candidate, Outcome, Plan, execute, plan
from archiver.retrieval.duplicates import read_records
from archiver.retrieval.manifest_listing import listed_on_scratch
from archiver.retrieval.search import SearchQuery
from archiver.retrieval.tombstones import Tombstones, read_tombstones
from archiver.settings import Settings
from archiver.storage import open_store
from archiver.storage.base import ObjectStore


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "subject",
        help="a data subject's request: every call of a phone number; export; erasure",
        description="Every archived call of --phone (caller or callee, any spelling), as a "
        "report; --export writes them as archiver export does; --erase deletes, with chained "
        "tombstones, each one no legal rule, legal hold or Object Lock date keeps, and names "
        "the reason for each one refused. Audited.",
    )
    common(p)
    p.add_argument("--phone", required=True, metavar="NUMBER", help="the subject's number")
    add_range(p, "calls started")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--export", metavar="FILE.zip", help="also export the calls still stored")
    p.add_argument("--force", action="store_true", help="--export: replace FILE.zip")
    p.add_argument("--erase", action="store_true", help="delete the erasable recordings")
    p.add_argument("--approved-by", metavar="NAME", help="--erase: who approved it")
    p.add_argument("--reason", metavar="TEXT", help="the request's reference, for the audit")
    p.add_argument("--key", type=Path, help="--erase: a witness key file (as dispose --key)")
    p.set_defaults(handler=run)


async def subject_calls(
    store: ObjectStore, settings: Settings, query: SearchQuery, opener: Opener | None = None
) -> AsyncIterator[tuple[Candidate, Due]]:
    """Each standing call line of the subject's number, with what its rule says (a
    sealed line's rule read from its numbers as ``opener`` opens them)."""
    schedule = load_schedule(
        settings.retention.rules_file,
        settings.storage.retention_days,
        {code: str(meaning) for code, meaning in settings.source.direction_codes.items()},
    )
    superseded = (await read_records(store)).superseded()
    async with (
        listed_on_scratch(
            store, query.since, query.until, settings.source.tz, settings.scratch_dir, "subject"
        ) as manifests,
        aclosing(read_manifests(store, manifests)) as reader,
    ):
        async for manifest in reader:
            for call, number in zip(manifest.calls, manifest.numbers, strict=True):
                if (manifest.key, number) in superseded or not query.matches(call):
                    continue
                due = schedule.due(opener.fields(call.fields) if opener else call.fields)
                yield Candidate(call, number, due), due


def _row(candidate: Candidate, state: str, opener: Opener) -> dict[str, Any]:
    call = opener.entry(candidate.call)
    return {
        "call_started_at": call.fields.get("call_started_at"),
        "provider": call.provider,
        "cdr_id": call.cdr_id,
        "sip_call_id": call.sip_call_id,
        "from_number": call.fields.get("from_number"),
        "to_number": call.fields.get("to_number"),
        "object_key": call.object_key,
        "rule": candidate.due.rule,
        "state": state,
    }


def _stored_state(candidate: Candidate, stones: Tombstones) -> str:
    stone = stones.of(candidate.call)
    if stone is not None:
        return f"disposed on {stone.disposed_day} under rule {stone.rule} ({stone.reason})"
    return "archived"


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Find, report, then export and/or erase; audit the request and its outcome."""
    since, until = parse_range(args.since, args.until, settings.source.tz)
    opener = opener_of(settings.privacy)
    try:
        query = SearchQuery(
            phone=args.phone,
            since=since,
            until=until,
            phone_hashes=opener.query_hashes(args.phone),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    approver = approver_of(args.approved_by) if args.erase else None
    if args.approved_by and not args.erase:
        raise UsageError("--approved-by: only with --erase")
    if args.export is not None:
        _check_export_path(Path(args.export), args.force)
    now = datetime.now(UTC)
    async with open_store(settings.storage, max_connections=8) as store:
        await require_archive(store)
        audit = AuditTrail(store, settings.operator)
        # With a key place, the request is recorded by the number's keyed hash only.
        target = {**query.describe(), "reason": args.reason}
        stones = await read_tombstones(store)
        found = [c async for c, _ in subject_calls(store, settings, query, opener)]
        rows = {
            (c.call.object_key, c.call.sha256): _row(c, _stored_state(c, stones), opener)
            for c in found
        }
        code = 0
        outcome: Outcome | None = None
        subject_key = ""

        if args.erase:
            assert approver is not None
            outcome, refused = await _erase(store, stones, found, approver, now)
            for candidate, why in refused:
                rows[(candidate.call.object_key, candidate.call.sha256)]["state"] = (
                    f"refused: {why}"
                )
            for stone in outcome.disposed:
                rows[(stone.object_key, stone.sha256)]["state"] = "erased"
            for key, why in outcome.failed:
                for row in rows.values():
                    if row["object_key"] == key:
                        row["state"] = f"failed: {why}"
            await finish_chain(store, settings, outcome.writer, args.key)
            code = ExitCode.FAILED_RECORDINGS if outcome.failed else 0
            subject_key = shred(
                opener,
                query.phone_hashes,
                ranged=since is not None or until is not None,
                kept=len(refused) + len(outcome.failed),
            )
            if subject_key == "destroyed":
                # The report too shows the number as the archive now holds it: erased.
                for c in found:
                    opened = opener.entry(c.call).fields
                    row = rows[(c.call.object_key, c.call.sha256)]
                    row["from_number"], row["to_number"] = (
                        opened.get("from_number"),
                        opened.get("to_number"),
                    )
        details = {
            "calls": len(rows),
            "erase": args.erase,
            "approved_by": approver,
            "outcomes": [
                {k: r[k] for k in ("cdr_id", "object_key", "state")} for r in rows.values()
            ],
            "tombstone_chain": outcome.writer if outcome else None,
            "subject_key": subject_key if args.erase else None,
        }
        await audit.record("subject", target, "failed" if code else "ok", details)
    _print(list(rows.values()), args.format)
    if args.erase:
        print(f"subject key: {subject_key}", file=sys.stderr)
    if args.export and code == 0:
        code = await _export(args, settings, [r for r in rows.values() if r["state"] == "archived"])
    return code


async def _erase(
    store: ObjectStore,
    stones: Tombstones,
    found: list[Candidate],
    approver: str,
    now: datetime,
) -> tuple[Outcome, list[tuple[Candidate, str]]]:
    """Refuse what a legal rule keeps; then, as dispose does, holds and locks; delete the rest."""
    refused: list[tuple[Candidate, str]] = []
    open_: list[Candidate] = []
    for candidate in found:
        due = candidate.due
        if stones.of(candidate.call) is not None:
            continue
        if due.legal and due.ends is not None and not due.due_by(now):
            refused.append(
                (
                    candidate,
                    f"rule {due.rule} (a legal obligation) keeps it until {due.ends.date()}",
                )
            )
        else:
            open_.append(candidate)

    async def each() -> AsyncIterator[Candidate]:
        for candidate in open_:
            yield candidate

    sorted_out: Plan = await plan(store, stones, each(), now)
    refused += sorted_out.kept
    sorted_out.pending = []  # a tombstone of an earlier run is dispose's to finish
    return await execute(store, sorted_out, "erasure", approver, now), refused


def _check_export_path(output: Path, force: bool) -> None:
    """Refuse an unusable --export file before anything is read or erased."""
    if output.is_dir() or not output.parent.is_dir():
        raise UsageError(f"--export: {output} is a directory or in no directory")
    if (output.exists() or output.is_symlink()) and not force:
        raise UsageError(f"--export: {output} already exists (--force replaces it)")


def _print(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        print(
            f"{row['call_started_at']}  {row['from_number'] or '-'} -> {row['to_number'] or '-'}  "
            f"{row['sip_call_id']}  {row['object_key']}  {row['state']}"
        )
    print(f"{len(rows)} call(s)")


async def _export(args: argparse.Namespace, settings: Settings, rows: list[dict[str, Any]]) -> int:
    """The calls still stored, through ``archiver export`` (its proofs, limits, audit)."""
    from archiver.commands import export

    if not rows:
        raise UsageError("--export: no call of this number is still stored: nothing exported")
    providers = {r["provider"] for r in rows}
    export_args = argparse.Namespace(
        ids=[r["cdr_id"] for r in rows],
        search=False,
        phone=None,
        extension=None,
        agent=None,
        direction=None,
        since=None,
        until=None,
        output=args.export,
        force=args.force,
        reason=args.reason or "data subject request",
        provider=providers.pop() if len(providers) == 1 else None,
    )
    return await export.run(export_args, settings)
