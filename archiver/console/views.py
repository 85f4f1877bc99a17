"""The pages: sign-in, search, a call's details, the audit trail."""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from archiver.console.auth import Role, same_token
from archiver.console.case_list import cases_of
from archiver.console.context import (
    SESSION_COOKIE,
    console_of,
    needs,
    page_context,
    session_of,
    set_cookie,
)
from archiver.console.hardening import check_origin
from archiver.console.index import COUNT_CAP, INTEGRITY, ORDERS, CallQuery, IndexedCall
from archiver.console.media import protection_of
from archiver.console.reasons import remembered_reason
from archiver.console.saved import saved_searches
from archiver.console.summaries import summary_of
from archiver.errors import ArchiverError
from archiver.models import Direction
from archiver.retrieval.audit import AuditQuery, audit_csv

LOGIN_COOKIE = "archiver_login"  # the sign-in form's CSRF token (double submit)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A rendered page."""
    # The context is passed whole: aiohttp_jinja2's context processors keep it in the
    # request under a string key, which aiohttp 3.14 warns about.
    return aiohttp_jinja2.render_template(
        template, request, {**page_context(request), **context}, status=status
    )


async def login_page(
    request: web.Request, error: str | None = None, status: int = 200
) -> web.Response:
    """The sign-in form and its double-submit token.

    A token the browser already holds is kept: a second load of the page (a
    favicon request redirected here, another tab) must not invalidate the
    form already shown.
    """
    held = request.cookies.get(LOGIN_COOKIE, "")
    token = held if _TOKEN.fullmatch(held) else secrets.token_urlsafe(24)
    response = page(request, "login.html", status=status, login_token=token, error=error)
    set_cookie(request, response, LOGIN_COOKIE, token)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /login."""
    return await login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: the origin, the form's token, the throttle, then the password.

    A pair (user, address) or an address that failed too often is told to wait
    (429, ``Retry-After``); a user who failed too often from anywhere is slowed
    (each try waits a few seconds), never locked out: see
    :mod:`archiver.console.throttle`.
    """
    console = console_of(request)
    check_origin(request)
    form = await request.post()
    user = str(form.get("user", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    if not same_token(str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")):
        raise web.HTTPForbidden(text="missing or wrong sign-in token: reload the page\n")
    address = console.proxy.client_address(request.remote, request.headers)
    wait = console.throttle.refused_for(address, user)
    if wait > 0:
        response = await login_page(request, "too_many", status=429)
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response
    delay = console.throttle.delay_for(user)
    if delay > 0:
        await asyncio.sleep(delay)
    account = console.users.accounts().get(user)
    if not await console.hashing.check(account, password) or account is None:
        console.throttle.failed(address, user)
        return await login_page(request, "bad_login", status=401)
    console.throttle.succeeded(address, user)
    await console.sessions.end(request.cookies.get(SESSION_COOKIE))
    token, _ = await console.sessions.create(account)
    response = web.HTTPSeeOther("/")
    set_cookie(request, response, SESSION_COOKIE, token)
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout."""
    await console_of(request).sessions.end(request.cookies.get(SESSION_COOKIE))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def parse_day(value: str | None, tz: tzinfo, *, end: bool = False) -> datetime | None:
    """A typed date as the start of that day in ``tz`` (``end``: the start of the next)."""
    if not value or not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise web.HTTPBadRequest(text=f"not a date (YYYY-MM-DD): {value[:40]!r}\n") from None
    if end:
        if day == date.max:
            return None
        day += timedelta(days=1)
    return datetime.combine(day, time(), tzinfo=tz)


def _text(request: web.Request, name: str, limit: int = 200) -> str | None:
    value = request.query.get(name, "").strip()
    if len(value) > limit:
        raise web.HTTPBadRequest(text=f"{name}: too long\n")
    return value or None


PAGE_SIZES = (5, 10, 25, 50, 100, 200)


def _number(request: web.Request, name: str, low: int, high: int) -> int | None:
    value = request.query.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise web.HTTPBadRequest(text=f"{name}: a whole number from {low} to {high}\n")
    return int(value)


def _clock(request: web.Request, name: str) -> int | None:
    """A typed time of day (HH:MM) as seconds after midnight."""
    value = request.query.get(name, "").strip()
    if not value:
        return None
    try:
        moment = time.fromisoformat(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: a time of day (HH:MM)\n") from None
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    value = _text(request, name)
    if value is not None and value not in choices:
        raise web.HTTPBadRequest(text=f"{name}: one of {', '.join(choices)}\n")
    return value


def query_of(request: web.Request) -> CallQuery:
    """The search form's criteria; 400 for a bad value."""
    tz = console_of(request).tz
    offset = datetime.now(tz).utcoffset()
    return CallQuery(
        phone=_text(request, "phone"),
        extension=_text(request, "extension"),
        agent=_text(request, "agent"),
        direction=_choice(request, "direction", tuple(d.value for d in Direction)),
        ident=_text(request, "id", 500),
        since=parse_day(request.query.get("from"), tz),
        until=parse_day(request.query.get("to"), tz, end=True),
        min_seconds=_number(request, "min_seconds", 0, 10**7),
        max_seconds=_number(request, "max_seconds", 0, 10**7),
        status=_text(request, "outcome"),
        customer=_text(request, "customer"),
        integrity=_choice(request, "integrity", INTEGRITY),
        hold=_choice(request, "hold", ("on", "off")),
        day_from=_clock(request, "time_from"),
        day_to=_clock(request, "time_to"),
        utc_offset=int(offset.total_seconds()) if offset is not None else 0,
        order=_choice(request, "sort", ORDERS) or "newest",
    )


def page_size(request: web.Request) -> int:
    """?size= (one of PAGE_SIZES), else the configured page size."""
    size = _number(request, "size", 1, 1000)
    if size is not None and size not in PAGE_SIZES:
        raise web.HTTPBadRequest(text=f"size: one of {', '.join(map(str, PAGE_SIZES))}\n")
    return size or console_of(request).settings.page_size


async def search_page(request: web.Request) -> web.StreamResponse:
    """GET /: the search form and, when asked, a page of results (the search is audited)."""
    console = console_of(request)
    session = session_of(request)
    query = console.calls.hashed(query_of(request))  # audited by keyed hash, with keys
    number = _number(request, "page", 1, 10_000) or 1
    size = page_size(request)
    asked = bool(query.describe()) or "go" in request.query
    calls: list[IndexedCall] = []
    total = 0
    if asked:
        calls, total = await console.calls.search(query, (number - 1) * size, size)
        try:
            await console.audit_log.record(
                console.store,
                session.user,
                "search",
                {"query": query.describe(), "page": number},
                "ok",
                {"results": total, "role": session.role.label},
            )
        except ArchiverError as exc:
            raise web.HTTPServiceUnavailable(
                text=f"the audit record cannot be written, no results shown: {exc}\n"
            ) from exc
    form = dict(request.query)
    return page(
        request,
        "search.html",
        asked=asked,
        calls=calls,
        total=total,
        more=total > COUNT_CAP,
        number=number,
        pages=max(1, -(-min(total, COUNT_CAP) // size)),
        size=size,
        sizes=PAGE_SIZES,
        order=query.order,
        has_next=total > number * size,
        form=form,
        query_string=urlencode({k: v for k, v in form.items() if k not in ("page", "lang")}),
        directions=[d.value for d in Direction],
        integrities=INTEGRITY,
        export_limit=console.settings.export_limit,
        saved=await saved_searches(console, session.user),
        cases=await cases_of(console, session) if session.role >= Role.EXPORTER and calls else [],
    )


async def call_page(request: web.Request) -> web.StreamResponse:
    """GET /calls/{id}: every field of the call, its check, and what the role may do."""
    console = console_of(request)
    item = await console.calls.get(int(request.match_info["id"]))
    if item is None:
        raise web.HTTPNotFound(text="no such call\n")
    protection = None
    if session_of(request).role >= Role.OFFICER:
        protection = await protection_of(console.store, item.call)
    return page(
        request,
        "call.html",
        item=item,
        fields=dict(item.call.fields),
        protection=protection,
        reason_value=remembered_reason(request, item.id),
        cases=await cases_of(console, session_of(request))
        if session_of(request).role >= Role.EXPORTER
        else [],
    )


def _audit_filter(request: web.Request) -> AuditQuery:
    tz = console_of(request).tz
    return AuditQuery(
        operator=_text(request, "operator"),
        action=_text(request, "action"),
        result=_text(request, "result"),
        since=parse_day(request.query.get("from"), tz),
        until=parse_day(request.query.get("to"), tz, end=True),
    )


AUDIT_PAGE_SIZE = 100


@needs(Role.OFFICER)
async def audit_page(request: web.Request) -> web.StreamResponse:
    """GET /audit: a page of the matching records, newest first, each target summarised."""
    console = console_of(request)
    await console.audit_log.refresh(console.store)
    number = _number(request, "page", 1, 100_000) or 1
    records = await console.audit_log.search(
        _audit_filter(request), AUDIT_PAGE_SIZE + 1, (number - 1) * AUDIT_PAGE_SIZE
    )
    shown = records[:AUDIT_PAGE_SIZE]
    summaries = [await summary_of(console, r.get("target")) for r in shown]
    return page(
        request,
        "audit.html",
        records=list(zip(shown, summaries, strict=True)),
        number=number,
        has_next=len(records) > AUDIT_PAGE_SIZE,
        form=dict(request.query),
    )


@needs(Role.OFFICER)
async def audit_export(request: web.Request) -> web.StreamResponse:
    """GET /audit.csv: the matching records as CSV (the export is itself audited)."""
    console = console_of(request)
    wanted = _audit_filter(request)
    records = await console.audit_log.search(wanted, limit=100_000)
    try:
        await console.audit_log.record(
            console.store,
            session_of(request).user,
            "audit-export",
            {"filter": {k: v for k, v in request.query.items() if v}},
            "ok",
            {"records": len(records)},
        )
    except ArchiverError as exc:
        raise web.HTTPServiceUnavailable(
            text=f"the audit record cannot be written: {exc}\n"
        ) from exc
    return web.Response(
        text=audit_csv(records),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


def add_routes(app: web.Application) -> None:
    """The pages' routes."""
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", search_page)
    app.router.add_get(r"/calls/{id:\d{1,18}}", call_page)
    app.router.add_get("/audit", audit_page)
    app.router.add_get("/audit.csv", audit_export)
