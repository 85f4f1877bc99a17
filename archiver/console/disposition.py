"""The disposition screen: what is due, a request to dispose of it, its approval.

Officers only. The due list is ``archiver dispose --dry-run``'s (the same survey,
:func:`archiver.retrieval.disposal.survey`); a request fixes the list it covers
(:mod:`archiver.retrieval.disposal_requests`); its approval runs the disposition
through the CLI's own code, over that list only, with tombstones naming the
approver and the certificate of destruction in the audit trail. Under the
two-person rule (``ARCHIVER_CONSOLE__DISPOSAL_TWO_PERSON``, on by default) the
officer who made a request cannot approve it. Every survey, request, approval,
refusal and outcome is an audit record.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from archiver.console.auth import Role
from archiver.console.context import Console, console_of, session_of
from archiver.console.views import page
from archiver.errors import ArchiverError
from archiver.retrieval.disposal import Survey, certificate_details, stamp_chain, survey
from archiver.retrieval.disposal_requests import (
    AlreadyDecided,
    DispositionRequest,
    create_request,
    list_requests,
    load_request,
    record_approval,
    record_outcome,
)
from archiver.retrieval.disposition import execute
from archiver.timeutil import parse_user_time

BUSY_RETRY = 5  # seconds a refused survey is told to wait


async def _audit(
    request: web.Request,
    action: str,
    target: dict[str, Any],
    result: str,
    details: dict[str, Any],
    *,
    best_effort: bool = False,
) -> str | None:
    console = console_of(request)
    session = session_of(request)
    return await console.audit_log.record(
        console.store,
        session.user,
        action,
        target,
        result,
        {**details, "role": session.role.label},
        best_effort=best_effort,
    )


async def _officer(request: web.Request, action: str, target: dict[str, Any]) -> None:
    """403 (audited) unless the session is an officer's."""
    if session_of(request).role < Role.OFFICER:
        await _audit(
            request,
            action,
            target,
            "refused",
            {"reason": "needs the officer role"},
            best_effort=True,
        )
        raise web.HTTPForbidden(text=f"this needs the {Role.OFFICER.label} role\n")


def _as_of(console: Console, value: str | None) -> datetime:
    """The typed as-of (a date or time, in the source's zone, as ``dispose --as-of``),
    else now; 400 for one that is not a time or is in the future."""
    now = datetime.now(UTC)
    if not value or not value.strip():
        return now
    if len(value) > 64:
        raise web.HTTPBadRequest(text="as_of: too long\n")
    try:
        moment = parse_user_time(value, console.tz)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"as_of: {exc}\n") from None
    if moment > now:
        raise web.HTTPBadRequest(
            text="as_of: in the future; a disposition covers retention that has ended\n"
        )
    return moment


async def _survey(console: Console, as_of: datetime) -> Survey:
    """The survey, one at a time per console (429 while another runs)."""
    if console.disposal_busy.locked():
        raise web.HTTPTooManyRequests(
            text="a survey or a disposition is running: try again in a moment\n",
            headers={"Retry-After": str(BUSY_RETRY)},
        )
    async with console.disposal_busy:
        now = datetime.now(UTC)
        return await survey(
            console.store, console.schedule, as_of, now, opener=console.calls.opener
        )


async def disposition_page(request: web.Request) -> web.StreamResponse:
    """GET /disposition: the requests, and (``go``) what is due by ``as_of``."""
    await _officer(request, "dispose-dry-run", {"page": "disposition"})
    console = console_of(request)
    as_of_text = request.query.get("as_of", "").strip()
    found: Survey | None = None
    as_of = _as_of(console, as_of_text)
    if "go" in request.query:
        found = await _survey(console, as_of)
        plan = found.found
        await _audit(
            request,
            "dispose-dry-run",
            {"as_of": as_of.isoformat()},
            "ok",
            {"due": found.due, "kept": len(plan.kept), "disposed_before": plan.done_before},
        )
    return page(
        request,
        "disposition.html",
        found=found,
        as_of=as_of,
        as_of_text=as_of_text,
        requests=await list_requests(console.store),
        two_person=console.settings.disposal_two_person,
    )


async def request_form(request: web.Request) -> web.StreamResponse:
    """POST /disposition: a request over what is due by ``as_of`` now (surveyed again here:
    the list is the server's, never the page's)."""
    await _officer(request, "disposition-request", {"page": "disposition"})
    console = console_of(request)
    form = await request.post()
    as_of = _as_of(console, str(form.get("as_of", "")))
    found = await _survey(console, as_of)
    if not found.due:
        await _audit(
            request,
            "disposition-request",
            {"as_of": as_of.isoformat()},
            "refused",
            {"reason": "nothing is due"},
        )
        raise web.HTTPBadRequest(text="nothing is due by that time: no request was made\n")
    made = await create_request(console.store, session_of(request).user, as_of, found)
    await _audit(
        request,
        "disposition-request",
        {"request": made.id, "as_of": made.as_of},
        "ok",
        {**made.summary(), "kept": len(made.kept), "more": made.more},
    )
    raise web.HTTPSeeOther(f"/disposition/{made.id}")


async def _request_of(request: web.Request) -> DispositionRequest:
    found = await load_request(console_of(request).store, request.match_info["request"])
    if found is None:
        raise web.HTTPNotFound(text="no such disposition request\n")
    return found


async def request_page(request: web.Request) -> web.StreamResponse:
    """GET /disposition/{request}: the request, the list it covers, its outcome."""
    await _officer(request, "disposition-view", {"request": request.match_info["request"]})
    console = console_of(request)
    req = await _request_of(request)
    mine = req.by == session_of(request).user
    return page(
        request,
        "disposition_request.html",
        req=req,
        may_approve=req.status == "requested"
        and req.damaged is None
        and not (mine and console.settings.disposal_two_person),
        own=mine,
        two_person=console.settings.disposal_two_person,
    )


async def approve(request: web.Request) -> web.StreamResponse:
    """POST /disposition/{request}/approve: check the rules, record the approval, run it."""
    target = {"request": request.match_info["request"]}
    await _officer(request, "disposition-approve", target)
    console = console_of(request)
    req = await _request_of(request)
    user = session_of(request).user
    target |= {"as_of": req.as_of}
    if console.settings.disposal_two_person and req.by == user:
        await _audit(
            request,
            "disposition-approve",
            target,
            "refused",
            {**req.summary(), "reason": "two-person rule: the requester cannot approve"},
        )
        raise web.HTTPForbidden(
            text=f"refused: the two-person rule. {user} made request {req.id}; another "
            "signed-in officer must approve it\n"
        )
    try:
        as_of = datetime.fromisoformat(req.as_of)
    except ValueError:
        req.damaged = req.damaged or "its as-of is not a time"
    if req.damaged is not None:
        await _audit(request, "disposition-approve", target, "refused", {"reason": req.damaged})
        raise web.HTTPConflict(text=f"refused: request {req.id}: {req.damaged}\n")
    try:
        await record_approval(console.store, req, user)
    except AlreadyDecided as exc:
        await _audit(
            request,
            "disposition-approve",
            target,
            "refused",
            {"reason": str(exc)},
        )
        raise web.HTTPConflict(text=f"refused: {exc}\n") from None
    await _audit(
        request,
        "disposition-approve",
        target,
        "ok",
        {**req.summary(), "two_person": console.settings.disposal_two_person},
    )
    # Shielded: a browser that goes away must not stop a disposition halfway.
    run = asyncio.ensure_future(_dispose(request, console, req, user, as_of))
    await asyncio.shield(run)
    raise web.HTTPSeeOther(f"/disposition/{req.id}")


async def _dispose(
    request: web.Request, console: Console, req: DispositionRequest, user: str, as_of: datetime
) -> None:
    """The approved run over the request's list: tombstones, deletions, certificate."""
    target = {"request": req.id, "as_of": req.as_of}
    async with console.disposal_busy:
        now = datetime.now(UTC)
        try:
            found = await survey(
                console.store,
                console.schedule,
                as_of,
                now,
                req.named(),
                opener=console.calls.opener,
            )
            outcome = await execute(console.store, found.found, "retention", user, now)
            await stamp_chain(console.store, console.timestamp, outcome.writer)
        except ArchiverError as exc:
            await _audit(
                request, "dispose", target, "failed", {"error": str(exc)}, best_effort=True
            )
            raise
    plan = found.found
    done = {(s.object_key, s.sha256) for s in outcome.disposed}
    done |= {(c.call.object_key, c.call.sha256) for c, _ in plan.kept}
    done |= {(s.object_key, s.sha256) for s in plan.pending}
    failed = {key for key, _ in outcome.failed}
    skipped = [{"object_key": c.call.object_key, "reason": why} for c, why in plan.kept]
    for key, sha in sorted(req.named() - done):
        if key in failed:
            continue
        stone = found.tombstones.stones.get((key, sha))
        reason = (
            f"disposed of before (tombstone of {stone.disposed_day})"
            if stone is not None
            else "no longer due by the request's as-of under the current rules"
        )
        skipped.append({"object_key": key, "reason": reason})
    details = certificate_details(outcome, plan, as_of, user)
    details |= {"request": req.id, "requested_by": req.by, "skipped": skipped}
    result = "failed" if outcome.failed else "ok"
    certificate = await _audit(request, "dispose", target, result, details)
    await record_outcome(console.store, req, user, outcome, skipped, certificate or "")


def add_routes(app: web.Application) -> None:
    """The disposition screen's routes."""
    app.router.add_get("/disposition", disposition_page)
    app.router.add_post("/disposition", request_form)
    app.router.add_get(r"/disposition/{request:D-\d{8}-[0-9a-f]{8}}", request_page)
    app.router.add_post(r"/disposition/{request:D-\d{8}-[0-9a-f]{8}}/approve", approve)
