"""The epacific API (seed 003): ``POST /cdrs/json`` and ``POST /ext_reg/json``."""

from __future__ import annotations

import hmac
import json
import math
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from archiver.simulator.calls import AGENTS
from archiver.simulator.records import epacific_record, json_response, parse_local

if TYPE_CHECKING:
    from archiver.simulator.server import Simulator

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_MINUTE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class _BadRequest(ValueError):
    """The body cannot be understood; the message goes back to the client."""


def is_api_path(path: str) -> bool:
    """Whether the path is one of this API's endpoints (for API faults)."""
    return path in ("/cdrs/json", "/ext_reg/json")


def add_routes(app: web.Application, sim: Simulator) -> None:
    """Serve the epacific endpoints from ``sim``."""

    async def cdrs(request: web.Request) -> web.Response:
        try:
            body = await _read_body(request)
        except _BadRequest as exc:
            return _error(str(exc), 400)
        if not _authorized(body, sim):
            return _error("invalid api_key or api_secret", 401)
        sim.stats["api:epacific_cdrs"] += 1
        try:
            limit = min(_int_field(body, "limit", DEFAULT_LIMIT), MAX_LIMIT)
            page = _int_field(body, "page", 1)
            callid = str(body.get("callid") or "").strip()
            if callid:
                call = sim.find(callid)
                # This API knows calls by their SIP call id only.
                calls = [call] if call is not None and call.sip_call_id == callid else []
                page = 1
            else:
                start, end = _date_range(body.get("date_range"), sim)
                calls = sim.select(start, end)
        except _BadRequest as exc:
            return _error(str(exc), 400)
        count = len(calls)
        first = (page - 1) * limit
        chosen = calls[first : first + limit]
        page_count = math.ceil(count / limit)
        shown_to = first + len(chosen)
        paging = {
            "txtdesc": f"Hiển thị {first + 1 if chosen else 0}-{shown_to} / {count} cuộc gọi",
            "page_current": page,
            "limit": limit,
            "record_count": count,
            "page_count": page_count,
            "prev_page": page > 1,
            "next_page": page < page_count,
        }
        data = [epacific_record(c, sim.recording_url(c, request), sim.tz) for c in chosen]
        return json_response({"status": "success", "data": data, "paging": paging})

    async def ext_reg(request: web.Request) -> web.Response:
        try:
            body = await _read_body(request)
        except _BadRequest as exc:
            return _error(str(exc), 400)
        if not _authorized(body, sim):
            return _error("invalid api_key or api_secret", 401)
        sim.stats["api:epacific_ext_reg"] += 1
        rng = random.Random(f"sim-ext-reg:{sim.config.seed}")
        others = sorted(ext for ext in AGENTS if ext not in ("100", "101"))
        online = ["100", "101", rng.choice(others)]
        data = [{"extension": ext, "status": "Registered"} for ext in online]
        return json_response({"status": "success", "data": data})

    app.router.add_post("/cdrs/json", cdrs)
    app.router.add_post("/ext_reg/json", ext_reg)


def _error(message: str, status: int) -> web.Response:
    return json_response({"status": "error", "message": message}, status=status)


async def _read_body(request: web.Request) -> dict[str, Any]:
    """The request's fields, from a JSON body or a form.

    Forms cannot nest, so a form's date_range comes either as a JSON string or
    as ``date_range[from]`` / ``date_range[to]`` fields.
    """
    if request.content_type in _FORM_TYPES:
        form = await request.post()
        fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        if isinstance(fields.get("date_range"), str):
            try:
                fields["date_range"] = json.loads(fields["date_range"])
            except ValueError:
                raise _BadRequest("date_range must be a JSON object") from None
        elif "date_range[from]" in fields or "date_range[to]" in fields:
            fields["date_range"] = {
                "from": fields.pop("date_range[from]", ""),
                "to": fields.pop("date_range[to]", ""),
            }
        return fields
    if request.content_type != "application/json":
        raise _BadRequest("Content-Type must be application/json or a form")
    try:
        body = await request.json()
    except ValueError:
        raise _BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


def _authorized(body: dict[str, Any], sim: Simulator) -> bool:
    key = str(body.get("api_key", "")).encode()
    secret = str(body.get("api_secret", "")).encode()
    # Both comparisons always run: no early exit that times one against the other.
    ok_key = hmac.compare_digest(key, sim.config.api_key.encode())
    ok_secret = hmac.compare_digest(secret, sim.config.api_secret.encode())
    if ok_key and ok_secret:
        return True
    sim.stats["auth_failures"] += 1
    return False


def _int_field(body: dict[str, Any], name: str, default: int) -> int:
    """A positive integer field, given as a number or (from forms) as a string."""
    raw = body.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise _BadRequest(f"{name} must be a positive integer")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _BadRequest(f"{name} must be a positive integer") from None
    if value < 1:
        raise _BadRequest(f"{name} must be a positive integer")
    return value


def _date_range(value: Any, sim: Simulator) -> tuple[datetime | None, datetime | None]:
    """The [start, end) that date_range selects.

    The API works in whole minutes and its ``to`` covers all of its minute, so
    a call at 10:05:59 is inside ``"to": "... 10:05"``; seconds sent anyway
    are dropped, as the provider does. Clients must trim to their own window.
    """
    if value is None or value == "":
        return None, None
    if not isinstance(value, dict):
        raise _BadRequest('date_range must be {"from": ..., "to": ...}')
    bounds: list[datetime | None] = []
    for name in ("from", "to"):
        text = value.get(name)
        if text is None or str(text).strip() == "":
            bounds.append(None)
            continue
        try:
            bounds.append(parse_local(str(text), sim.tz, _MINUTE_FORMATS).replace(second=0))
        except ValueError:
            raise _BadRequest(f"date_range.{name} must be YYYY-MM-DD HH:mm") from None
    start, to = bounds
    return start, (to + timedelta(minutes=1) if to is not None else None)
