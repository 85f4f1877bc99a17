"""The cdr_v2 API (seed 000): ``GET /v2/cdr`` and ``GET /v2/cdr/{id}``, Bearer token."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from archiver.simulator.calls import SimCall
from archiver.simulator.records import (
    default_record,
    flex_record,
    json_response,
    parse_local,
    quirks,
)

if TYPE_CHECKING:
    from archiver.simulator.server import Simulator

DEFAULT_LIMIT = 10
MAX_LIMIT = 500
SCROLL_PAGE_SIZE = 10
"""Scroll paging's fixed page size, whatever limit the client asks for."""

_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def is_api_path(path: str) -> bool:
    """Whether the path is one of this API's endpoints (for API faults)."""
    return path == "/v2/cdr" or path.startswith("/v2/cdr/")


def add_routes(app: web.Application, sim: Simulator) -> None:
    """Serve the cdr_v2 endpoints from ``sim``."""

    async def list_cdrs(request: web.Request) -> web.Response:
        if (denied := _deny(request, sim)) is not None:
            return denied
        sim.stats["api:cdr_v2_list"] += 1
        query = request.query
        try:
            start = _date(query.get("start_date"), sim)
            end = _date(query.get("end_date"), sim)
            limit = _int(query, "limit", minimum=1) or DEFAULT_LIMIT
            offset = _int(query, "offset", minimum=0)
            page = _int(query, "page", minimum=1)
        except ValueError as exc:
            return json_response({"error": str(exc)}, status=400)
        scroll = sim.config.paging == "scroll"
        limit = SCROLL_PAGE_SIZE if scroll else min(limit, MAX_LIMIT)
        if offset is None:
            offset = (page - 1) * limit if page is not None else 0
        calls = sim.select(start, end)
        total = len(calls)
        # The quirk applies at the end too: a client that stops at offset >=
        # total, or on a page equal to the last, misses or loops; one that
        # stops on a short page sees everything.
        first = offset - 1 if sim.config.shift_pages and offset > 0 else offset
        chosen = calls[first : first + limit]
        return json_response(
            {
                "data": [_render(call, request, sim) for call in chosen],
                "limit": limit,
                # Scroll answers with the cursor to send next; pagination echoes.
                "offset": first + len(chosen) if scroll else offset,
                "total": total,
            }
        )

    async def get_cdr(request: web.Request) -> web.Response:
        if (denied := _deny(request, sim)) is not None:
            return denied
        sim.stats["api:cdr_v2_get"] += 1
        call = sim.find(request.match_info["id"])
        if call is None:
            return json_response({"error": "not found"}, status=404)
        return json_response(_render(call, request, sim))

    app.router.add_get("/v2/cdr", list_cdrs)
    app.router.add_get("/v2/cdr/{id}", get_cdr)


def _deny(request: web.Request, sim: Simulator) -> web.Response | None:
    """A 401 unless the request carries the right Bearer token."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    expected = sim.config.token.encode()
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected):
        return None
    sim.stats["auth_failures"] += 1
    response = json_response({"error": "unauthorized"}, status=401)
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _render(call: SimCall, request: web.Request, sim: Simulator) -> dict[str, Any]:
    """The call in the configured mapping (``mixed``: the call's own, by seed)."""
    mapping = sim.config.mapping
    flex = mapping == "flex" or (mapping == "mixed" and quirks(call.seed, call.index).flex)
    render = flex_record if flex else default_record
    return render(call, sim.recording_url(call, request), sim.tz)


def _date(value: str | None, sim: Simulator) -> datetime | None:
    """A start_date/end_date bound; a date alone means that day's midnight."""
    if value is None or not value.strip():
        return None
    return parse_local(value, sim.tz, _DATE_FORMATS)


def _int(query: Mapping[str, str], name: str, *, minimum: int) -> int | None:
    """An integer query parameter, None when absent or empty."""
    raw = query.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}")
    return value
