"""Both sources against the simulated provider over loopback, fault modes included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from pydantic import SecretStr

from archiver.errors import AuthenticationError, RetriableError
from archiver.http import ApiClient, make_session
from archiver.models import Provider
from archiver.settings import SourceSettings
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.sources import CdrSource, make_source
from tests.support.web import serve


async def _no_sleep(_: float) -> None:
    return None


def _settings(kind: Provider, base: str, sim: Simulator, **extra: object) -> SourceSettings:
    values: dict[str, object] = {
        "kind": kind,
        "base_url": base,
        "timezone": sim.config.timezone,
        "page_size": 7,
        "rate_limit": 0,
    }
    if kind is Provider.CDR_V2:
        values["token"] = SecretStr(sim.config.token)
    else:
        values["api_key"] = SecretStr(sim.config.api_key)
        values["api_secret"] = SecretStr(sim.config.api_secret)
    values.update(extra)
    return SourceSettings.model_validate(values)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _collect(source: CdrSource, sim: Simulator, span: timedelta | None = None) -> list[str]:
    start = sim.config.start
    end = start + (span or sim.config.span)
    ids: list[str] = []
    async for page in source.list_window(start, end):
        ids += [c.cdr_id for c in page.records]
    return ids


def _expected(sim: Simulator, kind: Provider) -> list[str]:
    if kind is Provider.CDR_V2:
        return sorted(c.cdr_id for c in sim.calls)
    return sorted(c.sip_call_id for c in sim.calls)


@pytest.mark.parametrize("kind", [Provider.CDR_V2, Provider.EPACIFIC])
@pytest.mark.parametrize("paging", ["pagination", "scroll"])
@pytest.mark.parametrize("shift", [False, True])
async def test_every_call_listed_once(session, kind, paging, shift):
    sim = Simulator(SimConfig(seed=3, calls=40, paging=paging, shift_pages=shift))
    async with sim.serve() as base:
        source = make_source(
            _settings(kind, base, sim), ApiClient(session, _settings(kind, base, sim))
        )
        ids = await _collect(source, sim)
    assert sorted(ids) == _expected(sim, kind)
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("mapping", ["default", "flex", "mixed"])
async def test_cdr_v2_mappings_give_the_same_calls(session, mapping):
    sim = Simulator(SimConfig(seed=5, calls=25, mapping=mapping))
    async with sim.serve() as base:
        settings = _settings(Provider.CDR_V2, base, sim)
        source = make_source(settings, ApiClient(session, settings))
        calls = []
        async for page in source.list_window(sim.config.start, sim.config.start + sim.config.span):
            calls += page.records
    by_id = {c.cdr_id: c for c in calls}
    for expected in sim.calls:
        got = by_id[expected.cdr_id]
        assert got.sip_call_id == expected.sip_call_id
        assert got.started_at == expected.started_at
        assert got.has_recording == expected.has_recording


@pytest.mark.parametrize("kind", [Provider.CDR_V2, Provider.EPACIFIC])
async def test_adjacent_windows_split_calls_exactly(session, kind):
    """Windows whose edges are not on minutes: no call lost or doubled (epacific filters
    by whole minutes, the source filters to the exact window)."""
    sim = Simulator(SimConfig(seed=11, calls=60, span=timedelta(minutes=30)))
    async with sim.serve() as base:
        settings = _settings(kind, base, sim)
        source = make_source(settings, ApiClient(session, settings))
        edges = [sim.config.start + timedelta(seconds=s) for s in range(0, 30 * 60 + 1, 97)]
        edges.append(sim.config.start + timedelta(minutes=30))
        ids: list[str] = []
        for a, b in zip(edges, edges[1:], strict=False):
            async for page in source.list_window(a, b):
                ids += [c.cdr_id for c in page.records]
    assert sorted(ids) == _expected(sim, kind)


@pytest.mark.parametrize("kind", [Provider.CDR_V2, Provider.EPACIFIC])
async def test_lookup_by_id(session, kind):
    sim = Simulator(SimConfig(seed=2, calls=10))
    async with sim.serve() as base:
        settings = _settings(kind, base, sim)
        source = make_source(settings, ApiClient(session, settings))
        target = sim.calls[3]
        found = await source.lookup(target.sip_call_id)
        assert found is not None
        assert found.sip_call_id == target.sip_call_id
        if kind is Provider.CDR_V2:
            by_cdr = await source.lookup(target.cdr_id)
            assert by_cdr is not None
            assert by_cdr.cdr_id == target.cdr_id
        assert await source.lookup("no-such-call") is None


@pytest.mark.parametrize("kind", [Provider.CDR_V2, Provider.EPACIFIC])
async def test_wrong_credentials_fail_at_once(session, kind):
    sim = Simulator(SimConfig(seed=1, calls=5))
    async with sim.serve() as base:
        wrong = (
            {"token": SecretStr("wrong")}
            if kind is Provider.CDR_V2
            else {"api_secret": SecretStr("wrong")}
        )
        settings = _settings(kind, base, sim, **wrong)
        client = ApiClient(session, settings, sleep=_no_sleep)
        source = make_source(settings, client)
        with pytest.raises(AuthenticationError, match="authentication failed"):
            await source.probe()
        assert client.requests == 1  # no retry storm
        assert "wrong" not in str(client)


async def test_epacific_form_encoded_requests(session):
    sim = Simulator(SimConfig(seed=4, calls=15))
    async with sim.serve() as base:
        settings = _settings(Provider.EPACIFIC, base, sim, request_format="form")
        source = make_source(settings, ApiClient(session, settings))
        ids = await _collect(source, sim)
    assert sorted(ids) == _expected(sim, Provider.EPACIFIC)


@pytest.mark.parametrize("kind", [Provider.CDR_V2, Provider.EPACIFIC])
async def test_probe(session, kind):
    sim = Simulator(SimConfig(seed=1, calls=5))
    async with sim.serve() as base:
        settings = _settings(kind, base, sim)
        line = await make_source(settings, ApiClient(session, settings)).probe()
    assert "answered" in line


@pytest.mark.parametrize("kind", [Provider.CDR_V2, Provider.EPACIFIC])
async def test_listing_survives_5xx_429_and_slow_answers(session, kind):
    faults = Faults(api_5xx=0.25, api_429=0.15, retry_after=0, slow=0.2, slow_seconds=0.05)
    sim = Simulator(SimConfig(seed=9, calls=40, faults=faults))
    async with sim.serve() as base:
        settings = _settings(kind, base, sim, max_attempts=20)
        client = ApiClient(session, settings, sleep=_no_sleep)
        ids = await _collect(make_source(settings, client), sim)
    assert sorted(ids) == _expected(sim, kind)
    assert client.retries > 0
    assert sim.stats["fault:api_5xx"] + sim.stats["fault:api_429"] == client.retries


async def test_429_honours_retry_after(session):
    sim = Simulator(SimConfig(seed=1, calls=3, faults=Faults(api_429=1.0, retry_after=3)))
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        sim.set_faults(Faults())

    async with sim.serve() as base:
        settings = _settings(Provider.CDR_V2, base, sim)
        await make_source(settings, ApiClient(session, settings, sleep=record)).probe()
    assert waits == [3.0]


async def test_persistent_5xx_gives_up_with_a_clear_error(session):
    sim = Simulator(SimConfig(seed=1, calls=3, faults=Faults(api_5xx=1.0)))
    async with sim.serve() as base:
        settings = _settings(Provider.CDR_V2, base, sim, max_attempts=3)
        client = ApiClient(session, settings, sleep=_no_sleep)
        with pytest.raises(
            RetriableError, match=r"GET http://127\.0\.0\.1:\d+/v2/cdr answered HTTP 5\d\d"
        ):
            await make_source(settings, client).probe()
    assert client.requests == 3


async def test_timeouts_are_retried(session):
    sim = Simulator(SimConfig(seed=1, calls=3, faults=Faults(slow=1.0, slow_seconds=0.5)))
    async with sim.serve() as base:
        settings = _settings(Provider.CDR_V2, base, sim, read_timeout=0.1, max_attempts=2)
        async with make_session(settings) as timed:
            client = ApiClient(timed, settings, sleep=_no_sleep)
            with pytest.raises(RetriableError, match="timed out"):
                await make_source(settings, client).probe()
    assert client.requests == 2


async def test_a_body_that_is_not_json_names_endpoint_and_status(session):
    from aiohttp import web

    async def html(_: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    async with serve({"/v2/cdr": html}) as server:
        port = server.port
        settings = SourceSettings(
            kind=Provider.CDR_V2,
            base_url=f"http://127.0.0.1:{port}",
            token=SecretStr("t"),
            max_attempts=2,
        )
        client = ApiClient(session, settings, sleep=_no_sleep)
        with pytest.raises(
            RetriableError,
            match=(
                r"GET http://127\.0\.0\.1:\d+/v2/cdr answered HTTP 200 "
                r"with a body that is not JSON \(text/html\)"
            ),
        ):
            await make_source(settings, client).probe()


async def test_rate_limit_spaces_requests(session):
    import time

    sim = Simulator(SimConfig(seed=1, calls=30))
    async with sim.serve() as base:
        settings = _settings(Provider.CDR_V2, base, sim, rate_limit=10, page_size=2)
        client = ApiClient(session, settings)
        source = make_source(settings, client)
        t0 = time.monotonic()
        await _collect(source, sim)
        elapsed = time.monotonic() - t0
    # 16 requests at 10/s: past the first second's 10, the limiter must hold the
    # remaining 6 back for at least 0.5 s (a lower bound, not a speed measurement).
    assert client.requests >= 15
    assert elapsed >= 0.5


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("request_format", ["json", "form"])
async def test_epacific_credentials_are_never_posted_to_a_redirect(session, status, request_format):
    from aiohttp import web

    from archiver.errors import FatalError

    received: list[bytes] = []

    async def catch(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({"data": []})

    async def start(routes: dict[str, object]) -> tuple[web.AppRunner, str]:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_route("*", path, handler)  # type: ignore[arg-type]
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    other, other_url = await start({"/{tail:.*}": catch})

    async def redirect(_: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": f"{other_url}/x?t=1"})

    api, api_url = await start({"/cdrs/json": redirect, "/ext_reg/json": redirect})
    try:
        settings = SourceSettings(
            kind=Provider.EPACIFIC,
            base_url=api_url,
            api_key=SecretStr("key-123"),
            api_secret=SecretStr("secret-456"),
            request_format=request_format,
        )
        source = make_source(settings, ApiClient(session, settings, sleep=_no_sleep))
        with pytest.raises(FatalError, match=rf"HTTP {status} \(a redirect to ") as info:
            await source.probe()
        assert "secret-456" not in str(info.value)
        assert "t=1" not in str(info.value)
    finally:
        await api.cleanup()
        await other.cleanup()
    assert received == []
