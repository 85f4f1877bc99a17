"""Why an auditor plays, downloads, holds or exports: the reason asked for, validated,
remembered for a call's visit, and the case the action is done under."""

from __future__ import annotations

import time

from aiohttp import web

from archiver.console.case_list import cases_of
from archiver.console.context import console_of, session_of

REASON_MINUTES = 30.0  # one reason covers a call's play, download and hold for this long
MAX_REASONS = 200  # per session: the oldest remembered reasons are dropped beyond this


def reason_problem(reason: str) -> str | None:
    """Why ``reason`` is no reason (too short, only punctuation), or None."""
    if len(reason) < 4 or sum(ch.isalnum() for ch in reason) < 3:
        return "a reason says why: at least 4 characters, 3 of them letters or digits"
    return None


def remembered_reason(request: web.Request, call_id: int) -> str:
    """The reason given for this call during this visit, if it has not lapsed."""
    entry = session_of(request).reasons.get(call_id)
    return entry[0] if entry is not None and entry[1] > time.monotonic() else ""


async def reason_of(request: web.Request, call_id: int | None = None) -> str:
    """The reason the form gives, or the one given for ``call_id`` earlier in this visit;
    under a case (``case=`` in the form), the case's reference and reason when none is
    typed, and the case's id in either. 400 when the console requires a reason and there
    is none, or it is no reason."""
    mode = console_of(request).settings.reason
    form = await request.post()
    under = await _case_named(request, str(form.get("case", "")))
    if mode == "off":
        return under
    reason = " ".join(str(form.get("reason", "")).split())[:500]
    if not reason and call_id is not None:
        reason = remembered_reason(request, call_id)
    if not reason and under:
        return under
    if not reason:
        if mode == "required":
            raise web.HTTPBadRequest(text="a reason is required\n")
        return ""
    problem = reason_problem(reason)
    if problem is not None:
        raise web.HTTPBadRequest(text=f"{problem}\n")
    if call_id is not None:
        reasons = session_of(request).reasons
        reasons[call_id] = (reason, time.monotonic() + REASON_MINUTES * 60)
        reasons.move_to_end(call_id)
        while len(reasons) > MAX_REASONS:
            reasons.popitem(last=False)
    return f"{reason} [{under}]" if under else reason


async def _case_named(request: web.Request, case_id: str) -> str:
    """``"case <id>: <reference>: <reason>"`` of the case the form names, "" for none;
    404 for a case the session may not see."""
    if not case_id:
        return ""
    session = session_of(request)
    case = next((c for c in await cases_of(console_of(request), session) if c.id == case_id), None)
    if case is None:
        raise web.HTTPNotFound(text="no such case\n")
    return f"case {case.id}: {case.reference}: {case.reason}"
