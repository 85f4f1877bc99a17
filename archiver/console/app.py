"""The console's web application: its state, its security middlewares, the server.

Every response carries the security headers (a strict CSP, no framing, no
sniffing, no referrer to other sites, not cached). Nothing but the sign-in page and its
static files is served without a session; every request that changes
something carries the session's CSRF token (a form field or the
``X-CSRF-Token`` header).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping
from datetime import tzinfo
from pathlib import Path
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web

from archiver.console import cases, disposition, export, media, saved, views
from archiver.console.auditlog import AuditLog
from archiver.console.auth import AccountsFile, AmbiguousIdentity, Hashing, TrustedProxy, same_token
from archiver.console.context import (
    CONSOLE,
    LANG,
    LANG_COOKIE,
    SESSION,
    SESSION_COOKIE,
    Console,
    Handler,
    console_of,
    language,
    page_context,
    set_cookie,
)
from archiver.console.hardening import SAFE_METHODS, SECURITY_HEADERS, SecureRunner, check_origin
from archiver.console.index import CallIndex
from archiver.console.sessions import Session, Sessions
from archiver.console.tables import FORMAT, SCHEMA, drop_calls, outdated
from archiver.console.throttle import SignInThrottle
from archiver.console.words import LANGUAGES, translator
from archiver.errors import ArchiverError, ListenError
from archiver.index_db import IndexDatabase
from archiver.manifest.retention import Schedule
from archiver.privacy.lines import Opener
from archiver.retrieval.proof import ChainProver
from archiver.retrieval.proven_links import KeptLinks
from archiver.settings import ConsoleSettings, TimestampSettings
from archiver.storage.base import ObjectStore

log = logging.getLogger("archiver.console")

CSRF_HEADER = "X-CSRF-Token"
_PUBLIC = ("/login", "/static/")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The security headers on every response, errors included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and "text/html" in request.headers.get("Accept", ""):
            response = _error_page(request, exc.status, exc.text or "", exc.headers)
        else:
            exc.headers.update(SECURITY_HEADERS)
            raise
    except ArchiverError as exc:
        # The storage failed (or refused) under a page: one line, as the CLI says it.
        log.warning("%s %s: %s", request.method, request.path, exc)
        detail = f"the storage failed: {exc}\n"
        if "text/html" in request.headers.get("Accept", ""):
            response = _error_page(request, 503, detail, {})
        else:
            raise web.HTTPServiceUnavailable(text=detail, headers=SECURITY_HEADERS) from None
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _error_page(
    request: web.Request, status: int, detail: str, headers: Mapping[str, str]
) -> web.Response:
    """An error as a page in the reader's language (a browser asked for HTML): the
    status's meaning in words, the detail as the server said it."""
    lang = request.get(LANG) or language(request)
    t = translator(lang)
    key = f"error_{status}"
    message = t(key) if key != t(key) else t("error_other")
    response = aiohttp_jinja2.render_template(
        "error.html",
        request,
        {
            **page_context(request),
            "t": t,
            "lang": lang,
            "status": status,
            "message": message,
            "detail": detail.strip(),
        },
        status=status,
    )
    for name in ("Retry-After", "Content-Range", "Location"):
        if name in headers:
            response.headers[name] = headers[name]
    return response


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A session for every request but the sign-in page's; CSRF checked on every change."""
    console = console_of(request)
    lang = language(request)
    request[LANG] = lang
    if request.path == "/login" or request.path.startswith("/static/"):
        response = await handler(request)
        _keep_language(request, response, lang)
        return response
    try:
        proxy_user = console.proxy.user(request.remote, request.headers)
    except AmbiguousIdentity:
        raise web.HTTPBadRequest(text="refused: the identity header came twice\n") from None
    session: Session | None
    if proxy_user is not None:
        # The proxy is the authority on who is at the keyboard, on every request:
        # no session is kept for it, so a flood of cookieless requests stores nothing.
        session = await console.proxy_session(proxy_user)
    else:
        token = request.cookies.get(SESSION_COOKIE)
        session = await console.sessions.get(token)
        if session is not None and not console.still_valid(session):
            # A new password, a removal or another role: the rights the session was
            # given are no longer the account's, so it ends now, for good.
            await console.sessions.end(token)
            session = None
    if session is None:
        if request.method in ("GET", "HEAD"):
            raise web.HTTPSeeOther("/login")
        raise web.HTTPUnauthorized(text="sign in first\n")
    request[SESSION] = session
    if request.method not in SAFE_METHODS:
        check_origin(request)
        await _check_csrf(request, session)
    response = await handler(request)
    _keep_language(request, response, lang)
    return response


def _keep_language(request: web.Request, response: web.StreamResponse, lang: str) -> None:
    if request.query.get("lang") in LANGUAGES and not response.prepared:
        set_cookie(request, response, LANG_COOKIE, lang)


async def _check_csrf(request: web.Request, session: Session) -> None:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get("csrf")
        given = value if isinstance(value, str) else None
    if not same_token(given, session.csrf):
        raise web.HTTPForbidden(text="missing or wrong CSRF token\n")


def _pager(form: dict[str, str], number: int) -> str:
    """The query string of the same search at page ``number``."""
    return urlencode(
        {**{k: v for k, v in form.items() if k not in ("page", "lang")}, "page": number}
    )


def _sorted_by(form: dict[str, str], order: str) -> str:
    """The query string of the same search sorted by ``order``, from its first page."""
    kept = {k: v for k, v in form.items() if k not in ("page", "lang", "sort")}
    return urlencode({**kept, "go": "1", "sort": order})


def make_app(console: Console) -> web.Application:
    """The web application over ``console``."""
    app = web.Application(
        middlewares=[security_headers, require_session], client_max_size=64 * 1024
    )
    app[CONSOLE] = console
    here = Path(__file__).parent
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(here / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    env.filters["pager"] = _pager
    env.filters["sorted_by"] = _sorted_by
    views.add_routes(app)
    media.add_routes(app)
    export.add_routes(app)
    saved.add_routes(app)
    cases.add_routes(app)
    disposition.add_routes(app)
    app.router.add_static("/static/", here / "static", show_index=False, follow_symlinks=False)
    return app


async def refresh(console: Console) -> None:
    """Bring the index up to date with the storage's new manifests and audit records."""
    added = await console.calls.refresh(console.store)
    if added.manifests:
        log.info("console index: %d manifest(s), %d line(s) added", added.manifests, added.lines)
    await console.audit_log.refresh(console.store)


async def _keep_fresh(console: Console) -> None:
    while True:
        await asyncio.sleep(console.settings.refresh_interval)
        try:
            await refresh(console)
        except ArchiverError as exc:
            log.warning("the index could not be updated (tried again later): %s", exc)


def open_console(
    settings: ConsoleSettings,
    tz: tzinfo,
    store: ObjectStore,
    *,
    rebuild: bool = False,
    tsa_ca: bytes | None = None,
    opener: Opener | None = None,
    schedule: Schedule | None = None,
    timestamp: TimestampSettings | None = None,
) -> Console:
    """The console's state over ``store``, its index file opened (emptied if ``rebuild``;
    its call tables dropped if an older console made them); ``schedule``: the retention
    rules the disposition screen reads (none: nothing is ever due)."""
    if not rebuild and outdated(settings.index_path):
        log.warning(
            "the console index %s was made by another version (its format is not %d): its "
            "calls are indexed again from the storage (sessions, saved searches, audit kept)",
            settings.index_path,
            FORMAT,
        )
        drop_calls(settings.index_path)  # the sessions and saved searches stay
    db = (
        IndexDatabase.fresh(settings.index_path, SCHEMA)
        if rebuild
        else IndexDatabase(settings.index_path, SCHEMA)
    )
    kept = KeptLinks(settings.index_path)
    return Console(
        settings=settings,
        tz=tz,
        store=store,
        calls=CallIndex(db, opener, settings.index_workers),
        audit_log=AuditLog(db),
        sessions=Sessions(db, settings.session_minutes * 60),
        throttle=SignInThrottle(settings.login_attempts),
        hashing=Hashing(),
        proxy=TrustedProxy(settings.proxy_header, settings.proxy_addresses),
        users=AccountsFile(settings.users_file),
        # The links it proves go to the index file, not a dict held for months (an old
        # call's walk back from its head: 700,000 links for the largest writer at 5M).
        prover=ChainProver(store, kept, keep=kept.keep),
        tsa_ca=tsa_ca,
        schedule=schedule or Schedule(),
        timestamp=timestamp or TimestampSettings(),
    )


async def serve(
    settings: ConsoleSettings,
    tz: tzinfo,
    store: ObjectStore,
    *,
    rebuild: bool = False,
    ready: Callable[[str], None] | None = None,
    tsa_ca: bytes | None = None,
    opener: Opener | None = None,
    schedule: Schedule | None = None,
    timestamp: TimestampSettings | None = None,
) -> None:
    """Index the storage, then serve the console until SIGINT or SIGTERM (``opener``:
    sealed phone numbers opened from ARCHIVER_PRIVACY__KEYS; ``schedule``: the retention
    rules; ``timestamp``: the TSA that stamps the tombstones' chain)."""
    console = open_console(
        settings,
        tz,
        store,
        rebuild=rebuild,
        tsa_ca=tsa_ca,
        opener=opener,
        schedule=schedule,
        timestamp=timestamp,
    )
    runner = SecureRunner(make_app(console), access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await refresh(console)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            raise ListenError(
                settings.host, settings.port, exc, "ARCHIVER_CONSOLE__HOST/ARCHIVER_CONSOLE__PORT"
            ) from None
        address = f"http://{settings.host}:{_port(runner, settings.port)}/"
        count = await console.calls.count()
        log.info("console serving %s on %s (%d calls indexed)", store.description, address, count)
        if ready is not None:
            ready(address)
        keeper = asyncio.create_task(_keep_fresh(console), name="console-refresh")
        try:
            await stop.wait()
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        console.calls.db.close()


def _port(runner: web.AppRunner, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured
