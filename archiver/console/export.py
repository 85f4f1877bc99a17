"""The export: a selection of calls as one ZIP, streamed as it is written
(the ZIP itself: :mod:`archiver.retrieval.zip_export`, shared with ``archiver export``).

The ZIP holds ``recordings/<id>-<name>``, ``manifest.csv`` and
``manifest.json`` (the calls' manifest lines, as ``archiver search`` exports
them) and ``SHA256SUMS`` (``sha256sum -c`` checks every file). It is written
with the standard library's :mod:`zipfile` into a sink the response drains
after every write: zipfile writes to a stream it cannot seek (sizes and CRCs
go in data descriptors after each entry), each entry's size is known from
the manifest so ZIP64 is chosen up front when needed, and no dependency is
added for it. Memory holds one chunk of a recording and the selection's
metadata (at most ``ARCHIVER_CONSOLE__EXPORT_LIMIT`` lines), whatever the
recordings weigh. Recordings are stored, not deflated: audio does not shrink.

Each recording is checked against its line before the ZIP starts, and hashed
while it is written: one that changed in between cuts the ZIP short (it has
no central directory, so no tool reads it as complete).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from archiver.console.auth import Role
from archiver.console.context import console_of, needs, session_of
from archiver.console.index import IndexedCall
from archiver.console.media import check_recording, file_name
from archiver.console.reasons import reason_of
from archiver.console.views import query_of
from archiver.errors import ArchiverError
from archiver.retrieval.zip_export import ChangedError, write_export


def _selected(form_ids: list[str], limit: int) -> list[int]:
    ids: list[int] = []
    for value in form_ids:
        if not value.isdigit() or len(value) > 18:
            raise web.HTTPBadRequest(text="ids: numbers only\n")
        if int(value) not in ids:
            ids.append(int(value))
    if not ids:
        raise web.HTTPBadRequest(text="no call selected\n")
    if len(ids) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(ids))
    return ids


@needs(Role.EXPORTER)
async def export(request: web.Request) -> web.StreamResponse:
    """POST /export: the selected calls (ids=...) as a streamed ZIP, checked and audited."""
    console = console_of(request)
    form = await request.post()
    limit = console.settings.export_limit
    if form.get("all") == "1":
        # "Export all N results": the search the page shows (its criteria in the URL),
        # the whole of it or nothing.
        found, total = await console.calls.search(query_of(request), 0, limit + 1)
        if total > limit:
            raise web.HTTPRequestEntityTooLarge(
                max_size=limit,
                actual_size=total,
                text=f"refused: the search finds {total} calls, more than "
                f"ARCHIVER_CONSOLE__EXPORT_LIMIT ({limit}): narrow it\n",
            )
        if not found:
            raise web.HTTPBadRequest(text="the search finds no call\n")
        ids = [item.id for item in found]
    else:
        ids = _selected([str(v) for v in form.getall("ids", [])], limit)
    reason = await reason_of(request)
    items = await console.calls.many(ids)
    if len(items) != len(ids):
        raise web.HTTPNotFound(text="some selected calls are not in the index\n")
    user = session_of(request).user
    target = {"calls": [f"{i.call.provider}:{i.call.cdr_id}" for i in items]}
    problems = {}
    contents: dict[str, bytes] = {}  # each manifest object read once for the selection
    for item in sorted(items, key=lambda i: i.call.manifest_key or ""):
        problem = await check_recording(console, item, contents)
        if problem is not None:
            problems[item.call.cdr_id] = problem
    if problems:
        await console.audit_log.record(
            console.store,
            user,
            "export",
            target,
            "refused",
            {"reason": reason, "problems": problems},
            best_effort=True,
        )
        lines = "\n".join(f"{cdr}: {why}" for cdr, why in problems.items())
        raise web.HTTPConflict(text=f"refused: some recordings failed their check\n{lines}\n")
    total = sum(item.call.size for item in items)
    if total > console.settings.export_max_bytes:
        raise web.HTTPRequestEntityTooLarge(
            max_size=console.settings.export_max_bytes,
            actual_size=total,
            text=f"refused: the selection holds {total} bytes of recordings, more than "
            f"ARCHIVER_CONSOLE__EXPORT_MAX_BYTES ({console.settings.export_max_bytes})\n",
        )
    if console.exporting.get(user, 0) >= console.settings.exports_per_user:
        raise web.HTTPTooManyRequests(
            text="refused: your other export is still streaming; wait for it to finish\n"
        )
    details = {"reason": reason, "calls": len(items), "bytes": total}
    try:
        await console.audit_log.record(console.store, user, "export", target, "started", details)
    except ArchiverError as exc:
        raise web.HTTPServiceUnavailable(
            text=f"the audit record cannot be written, nothing exported: {exc}\n"
        ) from exc
    console.exporting[user] = console.exporting.get(user, 0) + 1
    sent = _Counted()
    outcome = "aborted"
    try:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        response = web.StreamResponse()
        response.content_type = "application/zip"
        response.headers["Content-Disposition"] = (
            f'attachment; filename="archive-export-{stamp}.zip"'
        )
        await response.prepare(request)
        await _write_zip(request, response, items, sent)
        await response.write_eof()
        outcome = "ok"
        return response
    finally:
        console.exporting[user] -= 1
        if not console.exporting[user]:
            del console.exporting[user]
        # The real outcome: the whole ZIP, or where it stopped (the client went away,
        # a recording changed under it, the storage failed).
        final = {**details, "sent_bytes": sent.bytes}
        final["outcome"] = "complete" if outcome == "ok" else f"aborted at {sent.bytes} bytes"
        await console.audit_log.record(
            console.store, user, "export", target, outcome, final, best_effort=True
        )


class _Counted:
    """Bytes of the ZIP written to the client so far."""

    def __init__(self) -> None:
        self.bytes = 0


async def _write_zip(
    request: web.Request, response: web.StreamResponse, items: list[IndexedCall], sent: _Counted
) -> None:
    console = console_of(request)

    async def send(data: bytes) -> None:
        await response.write(data)
        sent.bytes += len(data)

    by_call = {id(item.call): item for item in items}
    selection = [(f"{item.id}-{file_name(item)}", item.call) for item in items]
    try:
        await write_export(console.store, selection, send)
    except ChangedError as exc:
        await console.calls.record_check(by_call[id(exc.call)].id, "changed while being exported")
        raise ConnectionResetError(str(exc)) from exc


def add_routes(app: web.Application) -> None:
    """The export's route."""
    app.router.add_post("/export", export)
