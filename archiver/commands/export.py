"""``archiver export``: several archived calls as one ZIP, from the command line.

The console's export (:mod:`archiver.retrieval.zip_export` writes both): each
call's line proven in the chain, each recording checked against its line
before the ZIP starts and hashed again as it is written, bounded by
``ARCHIVER_CONSOLE__EXPORT_LIMIT`` calls and ``ARCHIVER_CONSOLE__EXPORT_MAX_BYTES``,
audited ``started`` then ``ok`` or ``aborted``. The ZIP is written to a
private temporary file beside FILE and takes its name only once complete.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from archiver.commands.finding import full_listing_age, locate
from archiver.commands.search import direction_arg
from archiver.commands.time_range import add_range, parse_range
from archiver.errors import ArchiverError, StorageError, UsageError
from archiver.exits import ExitCode, fail
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import require_archive
from archiver.models import Provider
from archiver.privacy.lines import Opener, opener_of
from archiver.private_files import create_new, fsync_dir
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.errors import AmbiguousIdError, CallNotFoundError, IntegrityError
from archiver.retrieval.manifest_listing import listed_on_scratch
from archiver.retrieval.problems import ProblemKind
from archiver.retrieval.search import SearchQuery, search
from archiver.retrieval.verify import VerifyReport, check_entry
from archiver.retrieval.zip_export import write_export
from archiver.settings import Settings
from archiver.storage import ObjectStore, open_store, sanitize

_CRITERIA = ("phone", "extension", "agent", "direction", "since", "until")


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "export",
        help="several archived calls as one verified ZIP (the console's export)",
        description="Write the calls IDs name, or those --search finds, into FILE.zip: their "
        "recordings, manifest.csv, manifest.json and SHA256SUMS (sha256sum -c checks "
        "every file). Each line is proven in the manifest chain and each recording checked "
        "against it before the ZIP starts, then hashed again as it is written; at most "
        "ARCHIVER_CONSOLE__EXPORT_LIMIT calls and ARCHIVER_CONSOLE__EXPORT_MAX_BYTES bytes. "
        "Audited. Needs only the storage.",
    )
    common(p)
    p.add_argument("ids", nargs="*", metavar="ID", help="sip_call_id or cdr id of each call")
    p.add_argument("--search", action="store_true", help="export the calls the criteria below find")
    p.add_argument("--phone", metavar="NUMBER", help="--search: the caller's or callee's number")
    p.add_argument("--extension", metavar="EXT", help="--search: the call center's extension")
    p.add_argument("--agent", metavar="AGENT", help="--search: the agent's id or name")
    p.add_argument(
        "--direction", type=direction_arg, metavar="D", help="--search: inbound, outbound..."
    )
    add_range(p, "--search: calls started")
    p.add_argument("-o", "--output", required=True, metavar="FILE.zip", help="the ZIP to write")
    p.add_argument("--force", action="store_true", help="replace FILE.zip if it exists")
    p.add_argument("--reason", metavar="TEXT", help="why, kept in the audit record")
    p.add_argument(
        "--provider",
        choices=[p.value for p in Provider],
        help="IDs: only this provider's calls (when one id is known to several)",
    )
    p.set_defaults(handler=run)


def _output(args: argparse.Namespace) -> Path:
    output = Path(args.output)
    if output.is_dir():
        raise UsageError(f"-o: {output} is a directory; name the ZIP file")
    if not output.parent.is_dir():
        raise UsageError(f"-o: no such directory: {output.parent}")
    if (output.exists() or output.is_symlink()) and not args.force:
        raise UsageError(f"-o: {output} already exists (--force replaces it)")
    return output


def _query(args: argparse.Namespace, settings: Settings, opener: Opener) -> SearchQuery | None:
    criteria = [f"--{name}" for name in _CRITERIA if getattr(args, name) is not None]
    if args.search == bool(args.ids):
        raise UsageError("name the calls: IDs, or --search with criteria (not both)")
    if not args.search:
        if criteria:
            raise UsageError(f"{', '.join(criteria)}: only with --search")
        return None
    if not criteria:
        raise UsageError("--search needs a criterion (--since/--until, --phone...)")
    since, until = parse_range(args.since, args.until, settings.source.tz)
    try:
        return SearchQuery(
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


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Select, prove, check, then write the ZIP; audit each outcome."""
    output = _output(args)
    # Sealed numbers (ARCHIVER_PRIVACY__KEYS) found by keyed hash, opened in the ZIP's
    # manifest.csv/json where their keys exist ("[erased]" otherwise).
    opener = opener_of(settings.privacy)
    query = _query(args, settings, opener)
    limit = settings.console.export_limit
    async with open_store(settings.storage, max_connections=8) as store:
        await require_archive(store)
        audit = AuditTrail(store, settings.operator)
        target: dict[str, Any] = {"ids": list(args.ids)} if query is None else {}
        if query is not None:
            target["query"] = query.describe()
        try:
            calls = await _select(store, settings, args, query, limit)
        except CallNotFoundError as exc:
            await audit.record_best_effort("export", target, "not_found")
            return fail(ExitCode.NOT_FOUND, str(exc))
        except AmbiguousIdError as exc:
            await audit.record_best_effort("export", target, "ambiguous")
            return fail(ExitCode.USAGE, str(exc))
        except IntegrityError as exc:
            await audit.record_best_effort("export", target, exc.kind.value)
            return fail(ExitCode.CORRUPT, str(exc))
        target["calls"] = [f"{c.provider}:{c.cdr_id}" for c in calls]
        problems = await _problems(store, calls)
        if problems:
            await audit.record_best_effort("export", target, "refused", {"problems": problems})
            for why in problems.values():
                print(f"archiver: {why}", file=sys.stderr)
            return fail(ExitCode.CORRUPT, "refused: some recordings failed their check")
        total = sum(call.size for call in calls)
        if total > settings.console.export_max_bytes:
            raise UsageError(
                f"refused: the selection holds {total} bytes of recordings, more than "
                f"ARCHIVER_CONSOLE__EXPORT_MAX_BYTES ({settings.console.export_max_bytes})"
            )
        details = {"reason": args.reason, "calls": len(calls), "bytes": total}
        try:
            await audit.record("export", target, "started", details)
        except ArchiverError as exc:
            raise StorageError(
                f"the audit record cannot be written, nothing exported: {exc}"
            ) from exc
        try:
            opened = [opener.entry(call) for call in calls]
            size = await _write(store, opened, output, args.force)
        except BaseException as exc:
            await audit.record_best_effort("export", target, "aborted", details)
            if isinstance(exc, IntegrityError):
                return fail(ExitCode.CORRUPT, str(exc))
            raise
        details |= {"file": str(output.absolute()), "zip_bytes": size}
        await audit.record_best_effort("export", target, "ok", details)
    print(
        f"{output}: {len(calls)} call(s), {size} bytes; every recording verified against its "
        "manifest line (SHA256SUMS inside: sha256sum -c)"
    )
    return 0


async def _select(
    store: ObjectStore,
    settings: Settings,
    args: argparse.Namespace,
    query: SearchQuery | None,
    limit: int,
) -> list[ManifestEntry]:
    """The calls to export, each line proven in the chain, each once."""
    index = settings.console.index_path
    if query is None:
        idents = list(dict.fromkeys(args.ids))
        if len(idents) > limit:
            raise UsageError(
                f"{len(idents)} IDs, more than ARCHIVER_CONSOLE__EXPORT_LIMIT ({limit})"
            )
        wanted = [(ident, args.provider) for ident in idents]
    else:
        async with listed_on_scratch(
            store, query.since, query.until, settings.source.tz, settings.scratch_dir, "export"
        ) as manifests:
            found, _ = await search(store, manifests, query, limit + 1)
        if len(found) > limit:
            raise UsageError(
                f"refused: the search finds more than ARCHIVER_CONSOLE__EXPORT_LIMIT ({limit}) "
                "calls: narrow it"
            )
        if not found:
            raise UsageError("the search finds no call: nothing exported")
        wanted = [(call.cdr_id, call.provider) for call in found]
    calls: dict[tuple[str, str], ManifestEntry] = {}
    for ident, provider in wanted:
        age = full_listing_age(settings.console)
        call = (await locate(store, index, ident, provider, full_after=age)).call
        calls.setdefault((call.provider, call.cdr_id), call)
    return list(calls.values())


async def _problems(store: ObjectStore, calls: list[ManifestEntry]) -> dict[str, str]:
    """Each recording against its line before anything is written (as the console does)."""
    problems = {}
    for call in calls:
        problem = await check_entry(store, call, False, VerifyReport())
        if problem is not None and problem.kind is ProblemKind.ALTERED:
            problem = await check_entry(store, call, True, VerifyReport())
        if problem is not None:
            problems[f"{call.provider}:{call.cdr_id}"] = problem.line()
    return problems


async def _write(store: ObjectStore, calls: list[ManifestEntry], output: Path, force: bool) -> int:
    """The ZIP into a private temporary file, then given its name; its size."""
    tmp = output.with_name(f".{output.name}.{secrets.token_hex(6)}.partial")
    fd = create_new(tmp, 0o600)
    written = 0

    async def send(data: bytes) -> None:
        nonlocal written
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        written += len(data)

    try:
        names = [
            (f"{n:04d}-{sanitize(PurePosixPath(call.object_key).name)}", call)
            for n, call in enumerate(calls, 1)
        ]
        await write_export(store, names, send)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    os.close(fd)
    try:
        if force:
            os.replace(tmp, output)
        else:
            try:
                os.link(tmp, output)  # never over a file that appeared meanwhile
            finally:
                tmp.unlink()
    except FileExistsError:
        raise UsageError(f"-o: {output} already exists (--force replaces it)") from None
    fsync_dir(output.parent)
    return written
