"""The recording server: direct, redirecting and signed links, with download faults.

No authentication, like the providers' own recording hosts: the link is the key.
``GET /recordings/`` is an HTML directory listing of every recording, the shape
generic copy tools read (rclone's http backend): the benchmarks copy the same
files with such a tool to compare it with the archiver.
"""

from __future__ import annotations

import asyncio
import hmac
import html
from typing import TYPE_CHECKING

from aiohttp import web

from archiver.simulator.calls import SimCall

if TYPE_CHECKING:
    from archiver.simulator.server import Simulator

_HTML_ERROR_PAGE = """<!DOCTYPE html>
<html><head><title>Recording unavailable</title></head>
<body><h1>Xin lỗi, file ghi âm tạm thời không khả dụng</h1>
<p>The recording is temporarily unavailable. Please try again later.</p></body></html>
"""

_LISTING = """<html><head><title>recordings</title></head>
<body><pre>
{links}</pre></body></html>
"""

_S3_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>AccessDenied</Code><Message>{message}</Message></Error>"
)


def add_routes(app: web.Application, sim: Simulator) -> None:
    """Serve the recordings of ``sim``'s calls."""

    async def direct(request: web.Request) -> web.StreamResponse:
        call = _by_filename(sim, request.match_info["name"])
        if call is None:
            return _not_found()
        return await _send(request, sim, call)

    async def redirect(request: web.Request) -> web.StreamResponse:
        sim.stats["redirects"] += 1
        call = sim.find(request.match_info["cdr_id"])
        if call is None or call.cdr_id != request.match_info["cdr_id"] or not call.has_recording:
            return _not_found()
        location = f"{sim.public_base(request)}/recordings/{call.filename}"
        return web.Response(status=302, headers={"Location": location})

    async def signed(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        signature = request.query.get("signature", "")
        try:
            expires = int(request.query.get("expires", ""))
        except ValueError:
            return _forbidden(sim, "missing or malformed expires")
        if not hmac.compare_digest(signature.encode(), sim.sign(name, expires).encode()):
            return _forbidden(sim, "signature does not match")
        if sim.clock() >= expires:
            return _forbidden(sim, "request has expired")
        call = _by_filename(sim, name)
        if call is None:
            return _not_found()
        return await _send(request, sim, call)

    async def listing(request: web.Request) -> web.StreamResponse:
        links = "".join(
            f'<a href="{html.escape(c.filename)}">{html.escape(c.filename)}</a>\n'
            for c in sim.calls
            if c.has_recording
        )
        return web.Response(text=_LISTING.format(links=links), content_type="text/html")

    app.router.add_get("/recordings/", listing)
    app.router.add_get("/recordings/{name}", direct)
    app.router.add_get("/r/{cdr_id}", redirect)
    app.router.add_get("/signed/{name}", signed)


def _by_filename(sim: Simulator, name: str) -> SimCall | None:
    """The call whose recording is ``{cdr_id}.{ext}``, if it has one."""
    cdr_id, _, ext = name.rpartition(".")
    call = sim.find(cdr_id) if cdr_id else None
    if call is None or call.cdr_id != cdr_id or call.ext != ext or not call.has_recording:
        return None
    return call


def _not_found() -> web.Response:
    return web.Response(status=404, text="Not Found\n")


def _forbidden(sim: Simulator, message: str) -> web.Response:
    sim.stats["signed_rejected"] += 1
    return web.Response(
        status=403, text=_S3_ERROR.format(message=message), content_type="application/xml"
    )


async def _send(request: web.Request, sim: Simulator, call: SimCall) -> web.StreamResponse:
    """The recording, or the fault the dice chose for this request."""
    sim.stats["recording_requests"] += 1
    sim.stats[f"rec:{call.cdr_id}"] += 1
    if sim.not_ready(call):
        sim.stats["fault:not_ready"] += 1
        return _not_found()
    faults = sim.config.faults
    fault = sim.roll(
        [
            ("rec_5xx", faults.rec_5xx),
            ("rec_reset", faults.rec_reset),
            ("rec_truncated", faults.rec_truncated),
            ("rec_html", faults.rec_html),
        ],
        f"recording {call.cdr_id}",
    )
    if fault == "rec_5xx":
        return web.Response(status=503, text="Service Unavailable\n")
    if fault == "rec_html":
        return web.Response(text=_HTML_ERROR_PAGE, content_type="text/html")
    if fault in ("rec_reset", "rec_truncated"):
        return await _send_broken(request, sim, call, reset=fault == "rec_reset")

    try:
        wanted = request.http_range
        start, end, _ = wanted.indices(call.size)
    except ValueError:
        start, end = 0, call.size  # a malformed Range is ignored, as servers do
    partial = request.headers.get("Range") is not None and (start, end) != (0, call.size)
    if partial and start >= end:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{call.size}"})
    response = web.StreamResponse(status=206 if partial else 200)
    response.content_type = call.content_type
    response.content_length = end - start
    response.headers["Accept-Ranges"] = "bytes"
    if partial:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{call.size}"
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    for i, chunk in enumerate(call.iter_bytes(start, end)):
        if i and faults.drip_seconds:
            await asyncio.sleep(faults.drip_seconds)
        await response.write(chunk)
        sim.stats["bytes_sent"] += len(chunk)
    await response.write_eof()
    sim.stats["recordings_completed"] += 1
    return response


async def _send_broken(
    request: web.Request, sim: Simulator, call: SimCall, *, reset: bool
) -> web.StreamResponse:
    """Half the recording, then the connection goes away.

    ``reset``: chunked, then the transport is aborted (no final chunk ever
    comes). Otherwise the full Content-Length is promised and the connection
    closed early. Either way the client must see an incomplete payload.
    """
    response = web.StreamResponse()
    response.content_type = call.content_type
    if reset:
        response.enable_chunked_encoding()
    else:
        response.content_length = call.size
    await response.prepare(request)
    for chunk in call.iter_bytes(0, call.size // 2):
        await response.write(chunk)
    transport = request.transport
    if transport is not None:
        # abort() drops what is still buffered and resets; close() flushes, then FINs.
        if reset:
            transport.abort()
        else:
            transport.close()
    return response
