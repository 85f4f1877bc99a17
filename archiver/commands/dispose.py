"""``archiver dispose``: delete the recordings whose retention ended, leaving proof.

Lists (``--dry-run``), then deletes, every recording whose retention rule
(:mod:`archiver.manifest.retention`) ended by ``--as-of`` (default now) and
that no legal hold or Object Lock date keeps; each one gets a chained
tombstone first (:mod:`archiver.manifest.tombstone`), and the run's
certificate of destruction (calls, sizes, rules, approver) is an audit record
(``archiver audit --action dispose``) and, with ``--certificate FILE``, a CSV
or JSON file. Exit 0 when everything due was disposed of or kept for a stated
reason, 3 when some deletion failed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archiver.commands.time_range import parse_range
from archiver.errors import UsageError
from archiver.exits import ExitCode
from archiver.manifest.reader import require_archive
from archiver.manifest.retention import load_schedule
from archiver.manifest.tombstone import Tombstone
from archiver.privacy.lines import opener_of
from archiver.private_files import create_new
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.disposal import certificate_details, stamp_chain, survey
from archiver.retrieval.disposition import Outcome, Plan, execute
from archiver.settings import Settings
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from archiver.witness.keys import load_signer
from archiver.witness.registry import register_writer

CERTIFICATE_COLUMNS = (
    "provider",
    "cdr_id",
    "sip_call_id",
    "object_key",
    "sha256",
    "size",
    "rule",
    "reason",
    "approved_by",
    "disposed_at",
    "versions",
)


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "dispose",
        help="delete the recordings whose retention ended, with chained tombstones",
        description="List (--dry-run), then delete, every recording whose retention rule "
        "(ARCHIVER_RETENTION__RULES_FILE, default ARCHIVER_STORAGE__RETENTION_DAYS) ended by "
        "--as-of and that no legal hold or Object Lock date keeps. Each gets a chained "
        "tombstone before it is deleted; verify then counts it DISPOSED. Exit 0 when all due "
        "were disposed of or kept for a stated reason, 3 when some deletion failed.",
    )
    common(p)
    p.add_argument("--as-of", metavar="T", help="retention ended by T (default now)")
    p.add_argument("--dry-run", action="store_true", help="list what is due; delete nothing")
    p.add_argument("--approved-by", metavar="NAME", help="who approved (required to delete)")
    p.add_argument(
        "--certificate",
        type=Path,
        metavar="FILE",
        help="also write the certificate of destruction here (.csv or .json)",
    )
    p.add_argument("--key", type=Path, help="a witness key file: register the tombstones' chain")
    p.set_defaults(handler=run)


def approver_of(name: str | None) -> str:
    """The approver's name, checked (UsageError when missing or unprintable)."""
    text = (name or "").strip()
    if not text or len(text) > 200 or not text.isprintable():
        raise UsageError("--approved-by NAME: who approved the deletion (printable, 1-200)")
    return text


def certificate(stones: list[Tombstone], fmt: str) -> str:
    """The certificate of destruction as CSV or JSON (pure)."""
    rows = [json.loads(s.to_line()) for s in stones]
    if fmt == "json":
        return json.dumps({"disposed": rows, "count": len(rows)}, indent=2) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, CERTIFICATE_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row | {"versions": " ".join(row["versions"])})
    return out.getvalue()


def check_certificate_path(path: Path | None) -> None:
    """Refuse, before anything is deleted, a certificate file that cannot be written."""
    if path is None:
        return
    if path.exists() or path.is_symlink():
        raise UsageError(f"--certificate {path}: the file exists (nothing was deleted)")
    if not path.parent.is_dir():
        raise UsageError(f"--certificate {path}: no such folder (nothing was deleted)")


def write_certificate(path: Path, text: str) -> None:
    """Write the certificate, 0600, never over an existing file."""
    fd = create_new(path, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


async def finish_chain(
    store: ObjectStore, settings: Settings, writer: str | None, key: Path | None
) -> None:
    """Stamp and register the tombstones' chain, as dedupe and seal do theirs."""
    if writer is None:
        return
    await stamp_chain(store, settings.timestamp, writer)
    if key is not None:
        signer = load_signer(key)
        origin = "".join("_" if c.isspace() else c for c in settings.storage.url)
        await register_writer(store, signer, origin, writer, datetime.now(UTC))


def print_plan(found: Plan, verb: str) -> None:
    """One line per recording due, kept or pending."""
    for candidate, _ in found.deletable:
        call = candidate.call
        print(
            f"{verb}: {call.object_key} {call.describe()} rule {candidate.due.rule}, "
            f"retention ended {candidate.due.ends.isoformat() if candidate.due.ends else '-'}"
        )
    for candidate, why in found.kept:
        print(f"kept: {candidate.call.object_key} {candidate.call.describe()}: {why}")
    for stone in found.pending:
        print(f"{verb}: {stone.object_key}: tombstoned on {stone.disposed_day}, still stored")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Plan, then (unless --dry-run) tombstone and delete; certificate and audit."""
    as_of, _ = parse_range(args.as_of, None, settings.source.tz)
    now = datetime.now(UTC)
    as_of = as_of or now
    if as_of > now and not args.dry_run:
        # A look ahead is a plan; deleting by it would end retention before the rule does.
        raise UsageError(
            f"--as-of {args.as_of}: in the future; only --dry-run may look ahead "
            "(a deletion covers retention that has ended)"
        )
    approver = None if args.dry_run else approver_of(args.approved_by)
    if args.certificate is not None and args.certificate.suffix.lower() not in (".csv", ".json"):
        raise UsageError("--certificate FILE: a .csv or .json file")
    check_certificate_path(args.certificate)
    schedule = load_schedule(
        settings.retention.rules_file,
        settings.storage.retention_days,
        {code: str(meaning) for code, meaning in settings.source.direction_codes.items()},
    )

    # A sealed line's numbers (ARCHIVER_PRIVACY__KEYS) opened, for the rules that name numbers.
    opener = opener_of(settings.privacy)

    async with open_store(settings.storage, max_connections=8) as store:
        await require_archive(store)
        audit = AuditTrail(store, settings.operator)
        found = (await survey(store, schedule, as_of, now, opener=opener)).found
        if args.dry_run:
            print_plan(found, "due")
            print(
                f"dry run: {len(found.deletable) + len(found.pending)} recording(s) due by "
                f"{as_of.isoformat()}, {len(found.kept)} kept, {found.done_before} disposed before"
            )
            await audit.record_best_effort(
                "dispose-dry-run",
                {"as_of": as_of.isoformat()},
                "ok",
                {"due": len(found.deletable), "kept": len(found.kept)},
            )
            return 0
        assert approver is not None
        print_plan(Plan([], found.kept, []), "due")
        outcome = await execute(store, found, "retention", approver, now)
        await finish_chain(store, settings, outcome.writer, args.key)
        return await report(args, audit, outcome, found, as_of, approver)


async def report(
    args: argparse.Namespace,
    audit: AuditTrail,
    outcome: Outcome,
    found: Plan,
    as_of: datetime,
    approver: str,
) -> int:
    """Print, write the certificate and its audit record; the exit code."""
    for stone in outcome.disposed:
        print(
            f"disposed: {stone.object_key} ({stone.provider} cdr {stone.cdr_id}) "
            f"{stone.size} bytes, rule {stone.rule}"
        )
    for key, why in outcome.failed:
        # Its tombstone was written first (a crash never leaves a deletion without its
        # record): it stays pending, disposed nowhere, until a run deletes the recording.
        print(f"failed: {key}: {why} (still stored; the next run deletes it)")
    details: dict[str, Any] = certificate_details(outcome, found, as_of, approver)
    result = "failed" if outcome.failed else "ok"
    key = await audit.record("dispose", {"as_of": as_of.isoformat()}, result, details)
    if args.certificate is not None:
        fmt = args.certificate.suffix.lower().lstrip(".")
        write_certificate(args.certificate, certificate(outcome.disposed, fmt))
    print(
        f"disposed of {len(outcome.disposed)} recording(s) "
        f"({details['bytes']} bytes), kept {len(found.kept)}, failed {len(outcome.failed)}; "
        f"certificate of destruction: audit record {key}"
    )
    return ExitCode.FAILED_RECORDINGS if outcome.failed else 0
