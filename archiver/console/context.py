"""What every handler of the console shares: its state, the request's session and
language, the page context, the role check.

The bottom of the console's modules: the pages (:mod:`~archiver.console.views`,
:mod:`~archiver.console.media`, :mod:`~archiver.console.export`) import it, and
the application (:mod:`~archiver.console.app`) imports them, so no import runs
back up (``tests/unit/test_layering.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from functools import wraps
from urllib.parse import urlencode

from aiohttp import web

from archiver.console.auditlog import AuditLog
from archiver.console.auth import AccountsFile, Hashing, Role, TrustedProxy
from archiver.console.index import CallIndex
from archiver.console.sessions import Session, Sessions, account_stamp
from archiver.console.throttle import SignInThrottle
from archiver.console.words import LANGUAGES, call_time, local_time, translator
from archiver.manifest.retention import Schedule
from archiver.retrieval.cases import Case
from archiver.retrieval.proof import ChainProver
from archiver.settings import ConsoleSettings, TimestampSettings
from archiver.storage.base import ObjectStore

SESSION_COOKIE = "archiver_console"
LANG_COOKIE = "archiver_lang"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Console:
    """Everything the handlers share."""

    settings: ConsoleSettings
    tz: tzinfo  # the zone dates are typed in, and audit times shown in
    store: ObjectStore
    calls: CallIndex
    audit_log: AuditLog
    sessions: Sessions
    throttle: SignInThrottle
    hashing: Hashing
    proxy: TrustedProxy
    users: AccountsFile
    prover: ChainProver  # proves a line's manifest object in the chain before it is served
    exporting: dict[str, int] = field(default_factory=dict)  # exports streaming, per user
    tsa_ca: bytes | None = None  # the timestamp authority's CA, for evidence packages
    case_cache: tuple[float, list[Case]] | None = None  # (when listed, the cases)
    # The retention schedule (ARCHIVER_RETENTION__RULES_FILE) the disposition screen reads;
    # the default one keeps everything (nothing is ever due).
    schedule: Schedule = field(default_factory=Schedule)
    timestamp: TimestampSettings = field(default_factory=TimestampSettings)  # stamps tombstones
    # One survey or disposition at a time: each reads every manifest, and a run deletes.
    disposal_busy: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def proxy_session(self, user: str) -> Session:
        """The session of a request the proxy vouches for ``user`` on: the users file's
        role for an account there, else the configured one."""
        account = self.users.accounts().get(user)
        if account is not None:
            return await self.sessions.proxy_session(user, account.role, account_stamp(account))
        role = Role.parse(self.settings.proxy_role)
        return await self.sessions.proxy_session(user, role, f"proxy-role:{role.label}")

    def still_valid(self, session: Session) -> bool:
        """Whether the session's account is still in the users file as it was when signed in:
        a new password, a removal (and a new account of the same name) or another role
        ends it."""
        account = self.users.accounts().get(session.user)
        return account is not None and account_stamp(account) == session.stamp


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("session", Session)
LANG = web.RequestKey("lang", str)


def console_of(request: web.Request) -> Console:
    """The console a request belongs to."""
    return request.app[CONSOLE]


def session_of(request: web.Request) -> Session:
    """The signed-in session (the auth middleware has checked there is one)."""
    return request[SESSION]


def language(request: web.Request) -> str:
    """The page's language: ?lang=, else the cookie, else the configured default."""
    for value in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        if value in LANGUAGES:
            return value
    return console_of(request).settings.language


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    """A cookie the page's scripts cannot read, sent back only to this site."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="Strict",
        secure=console_of(request).settings.cookie_secure,
        path="/",
    )


def page_context(request: web.Request) -> dict[str, object]:
    """What every page's template sees: its words, the session, the date formats."""
    console = console_of(request)
    lang = request.get(LANG, console.settings.language)
    session = request.get(SESSION)
    return {
        "t": translator(lang),
        "lang": lang,
        "session": session,
        "Role": Role,
        "call_time": call_time,
        "local_time": lambda v: local_time(v, console.tz),
        "reason_mode": console.settings.reason,
        # The same page in another language: the search and its page are kept.
        "lang_link": lambda code: "?" + urlencode({**request.query, "lang": code}),
    }


def needs(role: Role) -> Callable[[Handler], Handler]:
    """Refuse (403) a request from a session whose role is below ``role``."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            if session_of(request).role < role:
                raise web.HTTPForbidden(text=f"this needs the {role.label} role\n")
            return await handler(request)

        return checked

    return wrap
