"""``archiver search``: archived calls by phone, extension, agent, direction and time.

From the storage alone. A table on a terminal; ``--format json|csv`` for
auditors. Every search is recorded in the audit trail before its results are
shown (it reveals who called whom).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import datetime

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from archiver.commands.time_range import add_range, parse_range
from archiver.errors import ArchiverError, StorageError, UsageError
from archiver.exits import warn
from archiver.lone_surrogates import printable
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import require_archive
from archiver.models import Direction
from archiver.privacy.lines import opened_names, opener_of
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.manifest_listing import ListedManifests, listed_on_scratch
from archiver.retrieval.search import (
    TABLE_COLUMNS,
    Matches,
    Oldest,
    SearchQuery,
    collect,
    direction_label,
    export_columns,
    write_csv,
    write_json,
)
from archiver.settings import Settings
from archiver.storage import open_store
from archiver.storage.base import ObjectStore

# A table of every match is held whole to size its columns: printed in pieces.
_TABLE_ROWS = 5000


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "search",
        help="find archived calls by phone, extension, agent, direction and time",
        description="Search the manifest, from the storage alone. Every criterion given "
        "must match. Phone numbers match the caller or the callee, +84 and 0 alike.",
    )
    common(p)
    p.add_argument("--phone", metavar="NUMBER", help="the caller's or the callee's number")
    p.add_argument("--extension", metavar="EXT", help="the call center's extension")
    p.add_argument("--agent", metavar="AGENT", help="the agent's id or name (any case)")
    p.add_argument(
        "--direction",
        type=direction_arg,
        metavar="D",
        help="inbound, outbound, local, or the provider's numeric code (e.g. 2); codes "
        "match by meaning too when ARCHIVER_SOURCE__DIRECTION_CODES says what they mean",
    )
    add_range(p, "search calls started")
    p.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help="table (default), or json / csv with every manifest field",
    )
    p.add_argument("--limit", type=int, metavar="N", help="at most N calls (the oldest first)")
    p.set_defaults(handler=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Search, record the search, print the results."""
    since, until = parse_range(args.since, args.until, settings.source.tz)
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit: at least 1")
    # Sealed lines (ARCHIVER_PRIVACY__KEYS) are found by the number's keyed hash, and
    # their numbers opened where the subject's key still exists ("[erased]" otherwise).
    opener = opener_of(settings.privacy)
    try:
        query = SearchQuery(
            phone=args.phone,
            extension=args.extension,
            agent=args.agent,
            direction=args.direction,
            since=since,
            until=until,
            direction_codes=settings.source.direction_codes,
            phone_hashes=opener.query_hashes(args.phone),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    async with (
        open_store(settings.storage, max_connections=16) as store,
        _listing(store, since, until, settings) as manifests,
    ):
        unknown: Counter[str] = Counter()
        found: Oldest | Matches
        if args.limit is not None:  # the N oldest, held as read
            found = Oldest(args.limit)
        else:  # every match, on the scratch file: millions over five years
            found = Matches(manifests.db, names=opened_names)
        bad = await collect(store, manifests, query, found, unknown)
        try:
            await AuditTrail(store, settings.operator).record(
                "search",
                {"query": query.describe(), "format": args.format},
                "ok",
                {"results": len(found)},
            )
        except ArchiverError as exc:
            raise StorageError(
                f"the audit record cannot be written, no results shown: {exc}"
            ) from exc

        def opened() -> Iterator[ManifestEntry]:  # a read of the matches, each opened
            return (opener.entry(call) for call in found)

        calls: Iterable[ManifestEntry] = list(opened()) if isinstance(found, Oldest) else opened()
        if args.format == "json":
            write_json(calls, sys.stdout)
        elif args.format == "csv":
            columns = found.columns() if isinstance(found, Matches) else export_columns(calls)
            write_csv(calls, columns, sys.stdout)
        else:
            held = calls if isinstance(calls, list) else None
            _table(opened if held is None else lambda: held, len(found), query.direction_codes)
    if unknown:
        codes = ", ".join(f"{code} ({n} call(s))" for code, n in sorted(unknown.items()))
        warn(
            f"calls with a numeric direction of unknown meaning also match the other criteria: "
            f"{codes}; search them with --direction CODE, or say what the codes mean in "
            "ARCHIVER_SOURCE__DIRECTION_CODES (e.g. 1=inbound,2=outbound)"
        )
    if bad:
        print(
            f"archiver: {bad} unreadable manifest line(s) skipped: run archiver verify",
            file=sys.stderr,
        )
    return 0


def _table(
    calls: Callable[[], Iterable[ManifestEntry]], count: int, codes: Mapping[str, str]
) -> None:
    """The calls as one table; past :data:`_TABLE_ROWS` rows, in pieces of that many
    (one table held in memory, not millions), each column as wide as its widest cell,
    measured by a first read of ``calls()``, so every piece lines up with the header."""
    console = Console(soft_wrap=False) if sys.stdout.isatty() else Console(width=240)
    if not count:
        console.print("no archived call matches")
        return
    widths: list[int | None] = [None] * len(TABLE_COLUMNS)
    if count > _TABLE_ROWS:
        sizes = [cell_len(title) for _, title in TABLE_COLUMNS]
        for call in calls():
            for i, (name, _) in enumerate(TABLE_COLUMNS):
                cell = _cell(call, name, codes)
                sizes[i] = max(sizes[i], *(cell_len(line) for line in cell.split("\n")))
        widths = list(sizes)
    rows = iter(calls())
    first = True
    while chunk := list(itertools.islice(rows, _TABLE_ROWS)):
        table = Table(show_edge=False, pad_edge=False, show_header=first)
        for (_, title), width in zip(TABLE_COLUMNS, widths, strict=True):
            table.add_column(title, overflow="fold", width=width)
        for call in chunk:
            table.add_row(*(_cell(call, name, codes) for name, _ in TABLE_COLUMNS))
        console.print(table)
        first = False
    console.print(f"{count} call(s)")


def _cell(call: ManifestEntry, name: str, codes: Mapping[str, str]) -> str:
    if name == "direction":
        return printable(direction_label(call.fields, codes))
    return _show(call.fields.get(name))


@contextlib.asynccontextmanager
async def _listing(
    store: ObjectStore, since: datetime | None, until: datetime | None, settings: Settings
) -> AsyncIterator[ListedManifests]:
    """The manifest objects of the range, listed onto the search's scratch file."""
    await require_archive(store)
    async with listed_on_scratch(
        store, since, until, settings.source.tz, settings.scratch_dir, "search"
    ) as listed:
        yield listed


def direction_arg(value: str) -> str:
    """``--direction``: a meaning or a numeric code, lower case."""
    wanted = value.strip().lower()
    if wanted in {d.value for d in Direction} or wanted.isdigit():
        return wanted
    raise argparse.ArgumentTypeError(
        f"invalid choice: {value!r} (inbound, outbound, local or a numeric code)"
    )


def _show(value: object) -> str:
    return "" if value is None else printable(str(value))
