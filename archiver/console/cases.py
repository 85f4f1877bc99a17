"""The console's cases: open one, add calls from a search, see its history, export its
evidence package (see :mod:`archiver.retrieval.cases` and :mod:`archiver.retrieval.evidence`).

Exporters and officers work in cases; an exporter sees the cases they opened,
an officer every case. Each step is an audit record naming the case.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from archiver.console.auth import Role
from archiver.console.case_list import cases_of, forget, visible
from archiver.console.context import Console, console_of, needs, session_of
from archiver.console.index import IndexedCall
from archiver.console.views import page
from archiver.errors import ArchiverError
from archiver.retrieval.cases import Case, add_calls, load_case, open_case
from archiver.retrieval.errors import IntegrityError
from archiver.retrieval.evidence import gather_proof, write_package


async def _case_of(request: web.Request) -> Case:
    case = await load_case(console_of(request).store, request.match_info["case"])
    if case is None or not visible(session_of(request), case):
        raise web.HTTPNotFound(text="no such case\n")
    return case


async def _audit(
    request: web.Request, action: str, case: Case, result: str, **details: object
) -> None:
    console = console_of(request)
    await console.audit_log.record(
        console.store,
        session_of(request).user,
        action,
        {"case": case.id, "reference": case.reference},
        result,
        {**case.summary(), **details},
    )


@needs(Role.EXPORTER)
async def cases_page(request: web.Request) -> web.StreamResponse:
    """GET /cases: the cases this user may see, and the form to open one."""
    console = console_of(request)
    cases = await cases_of(console, session_of(request), fresh=True)
    return page(request, "cases.html", cases=cases)


@needs(Role.EXPORTER)
async def open_form(request: web.Request) -> web.StreamResponse:
    """POST /cases: open a case (a reference and a reason), then show it."""
    console = console_of(request)
    form = await request.post()
    try:
        case = await open_case(
            console.store,
            session_of(request).user,
            str(form.get("reference", "")),
            str(form.get("reason", "")),
        )
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    forget(console)
    await _audit(request, "case-open", case, "ok")
    raise web.HTTPSeeOther(f"/cases/{case.id}")


async def _calls_of(console: Console, case: Case) -> list[tuple[str, IndexedCall | None]]:
    found: list[tuple[str, IndexedCall | None]] = []
    for named in case.calls:
        provider, _, cdr_id = named.partition(":")
        ident = await console.calls.find(provider, cdr_id)
        found.append((named, None if ident is None else await console.calls.get(ident)))
    return found


@needs(Role.EXPORTER)
async def case_page(request: web.Request) -> web.StreamResponse:
    """GET /cases/{case}: the case, its calls and its history."""
    console = console_of(request)
    case = await _case_of(request)
    return page(request, "case.html", case=case, calls=await _calls_of(console, case))


@needs(Role.EXPORTER)
async def add(request: web.Request) -> web.StreamResponse:
    """POST /cases/add (to_case=...): the selected calls (ids=...) join the case."""
    console = console_of(request)
    form = await request.post()
    found = await load_case(console.store, str(form.get("to_case", "")))
    if found is None or not visible(session_of(request), found):
        raise web.HTTPNotFound(text="no such case\n")
    case = found
    ids = [str(v) for v in form.getall("ids", [])]
    if not ids or not all(v.isdigit() and len(v) <= 18 for v in ids):
        raise web.HTTPBadRequest(text="no call selected\n")
    items = await console.calls.many([int(v) for v in ids[:1000]])
    named = [f"{i.call.provider}:{i.call.cdr_id}" for i in items]
    try:
        added = await add_calls(console.store, case, session_of(request).user, named)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    forget(console)
    await _audit(request, "case-add", case, "ok", added=added, named=named)
    raise web.HTTPSeeOther(f"/cases/{case.id}")


@needs(Role.EXPORTER)
async def package(request: web.Request) -> web.StreamResponse:
    """POST /cases/{case}/package: the case's evidence package, streamed as a ZIP."""
    console = console_of(request)
    case = await _case_of(request)
    calls = [item.call for _, item in await _calls_of(console, case) if item is not None]
    if len(calls) != len(case.calls) or not calls:
        raise web.HTTPConflict(text="some of the case's calls are not in the index yet\n")
    user = session_of(request).user
    try:
        proof = await gather_proof(console.store, calls)
    except IntegrityError as exc:
        await _audit(request, "case-export", case, "refused", problem=str(exc))
        raise web.HTTPConflict(text=f"refused: {exc}\n") from None
    header = {
        **case.summary(),
        "calls": case.calls,
        "history": case.history,
        "packaged_by": user,
        "packaged_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    await _audit(request, "case-export", case, "started")
    response = web.StreamResponse()
    response.content_type = "application/zip"
    response.headers["Content-Disposition"] = f'attachment; filename="{case.id}.zip"'
    await response.prepare(request)
    outcome = "aborted"
    try:
        await write_package(
            console.store, calls, header, response.write, tsa_ca=console.tsa_ca, proof=proof
        )
        await response.write_eof()
        outcome = "ok"
    except (IntegrityError, ArchiverError, ConnectionError) as exc:
        # The ZIP is cut short (no central directory): no tool reads it as complete.
        await _audit(request, "case-export", case, outcome, problem=str(exc))
        raise ConnectionResetError(str(exc)) from None
    await _audit(request, "case-export", case, outcome)
    return response


def add_routes(app: web.Application) -> None:
    """The cases' routes."""
    app.router.add_get("/cases", cases_page)
    app.router.add_post("/cases", open_form)
    app.router.add_get(r"/cases/{case:C-\d{8}-[0-9a-f]{8}}", case_page)
    app.router.add_post("/cases/add", add)
    app.router.add_post(r"/cases/{case:C-\d{8}-[0-9a-f]{8}}/package", package)
