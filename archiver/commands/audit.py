"""``archiver audit``: read the audit trail (``_archiver/audit/``), filtered.

From the storage alone, like ``get`` and ``search``: who retrieved, searched,
verified or held what, when, and with what result. A table on a terminal;
``--format json|csv`` for an auditor's own tools.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any

from rich.console import Console
from rich.table import Table

from archiver.commands.time_range import add_range, parse_range
from archiver.manifest.reader import require_archive
from archiver.retrieval.audit import AuditQuery, audit_csv, read_trail
from archiver.settings import Settings
from archiver.storage import open_store


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "audit",
        help="read the audit trail: who retrieved, searched or held what, and when",
        description="List the audit records under _archiver/audit/ in the storage, oldest "
        "first: every get, get --url, search, hold change and verify. Needs only the storage. "
        "Times are UTC, shown and filtered alike: a record shown at 2025-01-31T23:10:00Z is "
        "selected by --since 2025-01-31 --until 2025-02-01 (a time with an offset, such as "
        "2025-02-01T06:10+07:00, is taken as given).",
    )
    common(p)
    add_range(p, "only records written", zone="UTC when without an offset, as the trail shows")
    p.add_argument("--action", metavar="ACTION", help="only this action (get, url, search...)")
    p.add_argument("--operator", metavar="NAME", help="only this operator (any case)")
    p.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="table (default), or json / csv with every field of each record",
    )
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Read the trail, print the records that match."""
    # The trail's times are UTC (as shown): a naive --since/--until is UTC too, whatever
    # the source's zone, so that the day a record shows is the day that selects it.
    since, until = parse_range(args.since, args.until, UTC)
    query = AuditQuery(since, until, args.action, args.operator)
    async with open_store(settings.storage, max_connections=8) as store:
        await require_archive(store)
        records = [record async for record in read_trail(store, query)]
    if args.format == "json":
        sys.stdout.write(json.dumps(records, ensure_ascii=False, indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(audit_csv(records))
    else:
        _table(records)
    return 0


def _what(record: Mapping[str, Any]) -> str:
    target = record.get("target")
    if not isinstance(target, Mapping):
        return str(record.get("error", ""))
    if "query" in target:
        return json.dumps(target["query"], ensure_ascii=False)
    return str(target.get("sip_call_id") or target.get("id") or json.dumps(target))


def _table(records: Sequence[Mapping[str, Any]]) -> None:
    console = Console(soft_wrap=False) if sys.stdout.isatty() else Console(width=240)
    if not records:
        console.print("no audit record matches")
        return
    table = Table(show_edge=False, pad_edge=False)
    for title in ("at", "operator", "action", "result", "what"):
        table.add_column(title, overflow="fold")
    for r in records:
        cells = (r.get("at", r.get("key")), r.get("operator"), r.get("action"), r.get("result"))
        table.add_row(*("" if c is None else str(c) for c in cells), _what(r))
    console.print(table)
    console.print(f"{len(records)} record(s)")
