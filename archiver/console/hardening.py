"""What every answer of the console carries, and what every change must show.

- The security headers, on every response: the application's own (a
  middleware) and the framework's (a header too long, a malformed request, an
  unexpected error), which aiohttp answers before any middleware runs. Its
  answers echoed what it could not parse (a cookie of 8 KB came back in the
  body) without the headers; :class:`SecureRunner` makes them a bare status line
  with the headers, and logs the error's kind only, never the request's bytes.
- A change (any method but GET, HEAD, OPTIONS) must come from the console's own
  pages: ``Sec-Fetch-Site`` same-origin (or none: typed by the user) and an
  ``Origin`` naming this host, when the browser sends them. The CSRF token is
  still checked; this is the second lock, as OWASP's cheat sheet advises.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("archiver.console")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "media-src 'self'; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" with
    # every form, and the origin check below could not tell the console from a sandbox.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def check_origin(request: web.Request) -> None:
    """403 for a change a browser says comes from another site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        raise web.HTTPForbidden(text="refused: a change sent from another site\n")
    origin = request.headers.get("Origin")
    if origin is None:
        return
    host = request.headers.get("Host", "").lower()
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:
        netloc = ""
    if origin == "null" or not netloc or netloc != host:
        raise web.HTTPForbidden(text="refused: a change sent from another origin\n")


class _Handler(RequestHandler):
    """aiohttp's connection handler, with its own error answers made safe."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A status line and the security headers; nothing of the request echoed or logged."""
        kind = type(exc).__name__ if exc is not None else "error"
        if isinstance(exc, ConnectionError):
            log.info(
                "console: %s %s: the client went away (%s)", request.method, request.path, kind
            )
        elif status >= 500:
            log.error("console: %d on %s %s (%s)", status, request.method, request.path, kind)
        else:
            log.info("console: %d for a request it could not read (%s)", status, kind)
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started: the connection is closed")
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        response = web.Response(
            status=status, text=f"{status} {phrase}\n", headers=SECURITY_HEADERS
        )
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class SecureRunner(web.AppRunner):
    """An AppRunner whose connections answer the framework's own errors safely."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server
        return server
