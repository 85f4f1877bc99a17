"""The simulator: seeded calls served over both provider APIs, with faults."""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import dataclasses
import hashlib
import hmac
import ipaddress
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from archiver.simulator import cdr_v2, epacific, recordings
from archiver.simulator.calls import SimCall, call_order, initial_calls, iter_calls, make_call
from archiver.simulator.config import Faults, SimConfig
from archiver.simulator.records import json_response

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Simulator:
    """A simulated call-center provider: cdr_v2 and epacific APIs plus recordings.

    Everything served derives from ``config.seed``; faults are drawn from a
    generator seeded from it too. ``stats`` counts requests and faults so tests
    can tell what the client went through.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        window: tuple[datetime, datetime] | None = None,
    ) -> None:
        # Seconds since the epoch: when a signed link expires, when a late recording
        # turns up. A test moves its own clock instead of sleeping until then.
        self.clock = clock
        # Copies: set_faults and add_calls must not reach back into the caller's objects.
        config = config or SimConfig()
        self.config = dataclasses.replace(config, faults=dataclasses.replace(config.faults))
        # A window serves only the calls started in it (a month of a five-year bench).
        self.calls: list[SimCall] = (
            initial_calls(self.config) if window is None else list(iter_calls(self.config, *window))
        )
        self._starts = [c.started_at for c in self.calls]  # for bisect, as calls are sorted
        self.stats: collections.Counter[str] = collections.Counter()
        self.base_url = ""
        self._public_host = True
        self._rng = random.Random(f"sim-faults:{self.config.seed}")
        self._draws: collections.Counter[str] = collections.Counter()
        self._signing_key = hashlib.sha256(f"sim-signing:{self.config.seed}".encode()).digest()
        self._first_request: dict[str, float] = {}
        self._by_key: dict[str, SimCall] = {}
        # Late recordings steered by tests, by CDR id: the CDR shows no recording
        # URL yet; the recording 404s (until the id is removed from the set).
        self.withheld_urls: set[str] = set()
        self.withheld_recordings: set[str] = set()
        for call in self.calls:
            self._index(call)

    @property
    def tz(self) -> ZoneInfo:
        """The zone of the naive timestamps the APIs speak."""
        return self.config.tz

    def set_faults(self, faults: Faults) -> None:
        """Switch to these faults, from the next request on."""
        self.config.faults = dataclasses.replace(faults)

    def add_calls(self, n: int, start: datetime | None = None) -> list[SimCall]:
        """Make ``n`` more calls appear, one second apart from ``start``.

        The calls' ids, numbers and recordings follow from (seed, index) as for
        the first ones. ``start`` defaults to ``n`` seconds ago (whole seconds),
        so every new call has begun when this returns: what a daemon polling
        "now" expects to find. A naive ``start`` is read in the provider's zone.
        """
        if start is None:
            start = datetime.now(self.tz).replace(microsecond=0) - timedelta(seconds=n)
        elif start.tzinfo is None:
            start = start.replace(tzinfo=self.tz)
        first = max((c.index for c in self.calls), default=-1) + 1
        new = [
            make_call(self.config, first + i, (start + timedelta(seconds=i)).astimezone(self.tz))
            for i in range(n)
        ]
        for call in new:
            self._index(call)
        self.calls = sorted([*self.calls, *new], key=call_order)
        self._starts = [c.started_at for c in self.calls]
        return new

    def remove_calls(self, cdr_ids: Iterable[str]) -> list[SimCall]:
        """Stop listing these calls, as a provider purging old CDRs does; returns them."""
        gone = set(cdr_ids)
        removed = [c for c in self.calls if c.cdr_id in gone]
        self.calls = [c for c in self.calls if c.cdr_id not in gone]
        self._starts = [c.started_at for c in self.calls]
        for call in removed:
            for key in (call.cdr_id, call.sip_call_id):
                if self._by_key.get(key) is call:
                    del self._by_key[key]
        return removed

    def add_calls_at(self, starts: Sequence[datetime]) -> list[SimCall]:
        """One more call per start time (aware), added at once: CDRs that become
        visible together, as a provider writes calls that just ended."""
        first = max((c.index for c in self.calls), default=-1) + 1
        new = [
            make_call(self.config, first + i, s.astimezone(self.tz)) for i, s in enumerate(starts)
        ]
        for call in new:
            self._index(call)
        self.calls = sorted([*self.calls, *new], key=call_order)
        self._starts = [c.started_at for c in self.calls]
        return new

    def _index(self, call: SimCall) -> None:
        self._by_key.setdefault(call.cdr_id, call)
        self._by_key.setdefault(call.sip_call_id, call)

    def find(self, key: str) -> SimCall | None:
        """The call with this CDR id or sip_call_id (surrounding spaces ignored)."""
        return self._by_key.get(key.strip())

    def select(self, start: datetime | None, end: datetime | None) -> list[SimCall]:
        """Calls with start <= started_at < end (either bound optional), in order."""
        # Bisection: benchmarks list pages out of hundreds of thousands of calls.
        low = 0 if start is None else bisect.bisect_left(self._starts, start)
        high = len(self.calls) if end is None else bisect.bisect_left(self._starts, end)
        return self.calls[low : max(low, high)]

    # -- recordings' URLs ---------------------------------------------------

    def public_base(self, request: web.Request) -> str:
        """The origin recording URLs point at.

        The served base URL, unless the server listens on a wildcard address
        (0.0.0.0, ::) that clients cannot connect to: then the Host they used.
        """
        if self.base_url and self._public_host:
            return self.base_url
        return str(request.url.origin())

    def recording_url(self, call: SimCall, request: web.Request) -> str:
        """The call's recording link as the listing gives it ("" for none).

        Signed links are minted afresh on every call, like real providers do.
        """
        if not call.has_recording or call.cdr_id in self.withheld_urls:
            return ""
        base = self.public_base(request)
        if call.url_kind == "redirect":
            return f"{base}/r/{call.cdr_id}"
        if call.url_kind == "signed":
            expires = math.ceil(self.clock() + self.config.faults.signed_ttl)
            signature = self.sign(call.filename, expires)
            return f"{base}/signed/{call.filename}?expires={expires}&signature={signature}"
        return f"{base}/recordings/{call.filename}"

    def sign(self, filename: str, expires: int) -> str:
        """The HMAC-SHA256 signature of a signed recording URL."""
        message = f"{filename}:{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    # -- faults ---------------------------------------------------------------

    def roll(self, choices: Sequence[tuple[str, float]], key: str = "") -> str | None:
        """At most one fault among ``(name, rate)``, drawn once; None for none.

        Rates add up along one draw, so they behave as independent shares of
        the requests as long as their sum stays under 1. The draw is a function
        of (seed, ``key``, how many times ``key`` was drawn before): with ``key``
        naming the request (method, path, query, body), a page request and its
        retries meet the same faults whatever other requests run meanwhile, so
        a run's faults do not depend on how concurrent requests interleave.
        """
        active = [(name, rate) for name, rate in choices if rate > 0]
        if not active:
            return None
        nth = self._draws[key]
        self._draws[key] += 1
        draw = random.Random(f"sim-faults:{self.config.seed}:{key}:{nth}").random()
        for name, rate in active:
            if draw < rate:
                self.stats[f"fault:{name}"] += 1
                return name
            draw -= rate
        return None

    def pick_status(self, statuses: Sequence[int]) -> int:
        """One of ``statuses``, from the fault generator."""
        return self._rng.choice(statuses)

    def recording_late(self, call: SimCall) -> bool:
        """Whether the call is among those whose recording is not ready at first.

        Fixed by (seed, call) for a given ``not_ready_fraction``.
        """
        fraction = self.config.faults.not_ready_fraction
        draw = random.Random(f"sim-not-ready:{self.config.seed}:{call.index}").random()
        return draw < fraction

    def not_ready(self, call: SimCall) -> bool:
        """True while a late recording still 404s.

        The clock starts at the first request for it: the recording turns up
        ``not_ready_seconds`` after somebody first asked.
        """
        if call.cdr_id in self.withheld_recordings:
            return True
        if not self.recording_late(call):
            return False
        now = self.clock()
        first = self._first_request.setdefault(call.cdr_id, now)
        return now - first < self.config.faults.not_ready_seconds

    # -- the web app ----------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application serving both APIs, the recordings and /_sim."""
        app = web.Application(middlewares=[self._middleware])
        cdr_v2.add_routes(app, self)
        epacific.add_routes(app, self)
        recordings.add_routes(app, self)
        app.router.add_get("/_sim/stats", self._get_stats)
        app.router.add_get("/_sim/faults", self._get_faults)
        app.router.add_post("/_sim/faults", self._post_faults)
        app.router.add_post("/_sim/calls", self._post_calls)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        # The control endpoints stay reliable: tests steer the faults through them.
        if request.path.startswith("/_sim/"):
            return await handler(request)
        faults = self.config.faults
        api = epacific.is_api_path(request.path) or cdr_v2.is_api_path(request.path)
        # The request's identity for the fault draws: recordings by path (a signed
        # URL's query changes with each minting), API calls by everything asked.
        key = f"{request.method} {request.path}"
        if api:
            asked = await request.read() if request.can_read_body else b""
            key = f"{request.method} {request.path_qs} {asked.decode(errors='replace')}"
        if self.roll([("slow", faults.slow)], f"slow {key}"):
            await asyncio.sleep(faults.slow_seconds)
        if not api:
            return await handler(request)
        self.stats["api_requests"] += 1
        fault = self.roll([("api_5xx", faults.api_5xx), ("api_429", faults.api_429)], key)
        if fault == "api_429":
            body: dict[str, str] = (
                {"status": "error", "message": "too many requests"}
                if epacific.is_api_path(request.path)
                else {"error": "too many requests"}
            )
            response = json_response(body, status=429)
            response.headers["Retry-After"] = str(faults.retry_after)
            return response
        if fault == "api_5xx":
            return _server_error(self.pick_status((500, 502, 503)))
        return await handler(request)

    async def _get_stats(self, request: web.Request) -> web.Response:
        return json_response(dict(self.stats))

    async def _get_faults(self, request: web.Request) -> web.Response:
        return json_response(self.config.faults.to_dict())

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            faults = Faults.from_dict(await request.json())
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            return json_response({"error": str(exc)}, status=400)
        self.set_faults(faults)
        return json_response(faults.to_dict())

    async def _post_calls(self, request: web.Request) -> web.Response:
        """Add calls at runtime: ``{"n": 5, "start": "ISO 8601"?}`` (for subprocesses)."""
        try:
            body: Any = await request.json()
            n = int(body["n"])
            start = datetime.fromisoformat(body["start"]) if body.get("start") else None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return json_response({"error": f"bad request: {exc}"}, status=400)
        new = self.add_calls(n, start)
        return json_response({"added": [c.cdr_id for c in new], "calls": len(self.calls)})

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on (host, port) while the context lasts; yields the base URL."""
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            self._public_host = not _unspecified(host)
            shown = host
            if not self._public_host:
                # Listening everywhere: loopback is the address that surely works
                # here; remote clients get links built from the Host they used.
                shown = "::1" if ":" in str(bound_host) else "127.0.0.1"
            shown = f"[{shown}]" if ":" in shown else shown
            self.base_url = f"http://{shown}:{bound_port}"
            yield self.base_url
        finally:
            self.base_url = ""
            await runner.cleanup()


def _unspecified(host: str) -> bool:
    """True for wildcard listen addresses, which are no place to send clients."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == ""


_PROXY_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def _server_error(status: int) -> web.Response:
    """A 5xx as a real deployment sends it: JSON from the app, HTML from the proxy."""
    if status == 500:
        return json_response({"status": "error", "error": "internal server error"}, status=500)
    reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable"}[status]
    return web.Response(
        status=status,
        text=_PROXY_PAGE.format(code=status, reason=reason),
        content_type="text/html",
    )
