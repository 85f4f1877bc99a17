"""Every spelling of a loopback address, through the production connector: a canary
listener on 127.0.0.1 must see no connection at all, not merely no request.

The URL check reads the host as yarl normalizes it (full-width digits, the
ideographic full stop) and as inet_aton reads numbers; the connector's socket
factory refuses the address itself, since aiohttp skips the resolver for IP
literals. A redirect's Location takes the same path. A URL the HTTP client
cannot request fails at once as invalid, without retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from archiver.failures import FailureKind
from archiver.models import CallRecord, Provider
from archiver.pipeline.hosts import HostNotAllowedError, HostPolicy, guarded_connector
from archiver.pipeline.transfer import TransferConfig, Transferrer, TransferResult, Verdict
from archiver.settings import StorageSettings
from archiver.storage import open_store

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
API = "https://pbx.example.vn"  # trusted, never contacted

# Each names 127.0.0.1 (or 0.0.0.0, which Linux connects to loopback) at port {port}.
SPELLINGS = [
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{port}/x.wav",  # full-width digits
    "http://127\u30020\u30020\u30021:{port}/x.wav",  # ideographic full stop
    "http://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11:{port}/x.wav",  # both
    "http://0:{port}/x.wav",
    "http://2130706433:{port}/x.wav",
    "http://127.1:{port}/x.wav",
    "http://0177.0.0.1:{port}/x.wav",
    "http://0x7f.0.0.1:{port}/x.wav",
    "http://0x7f000001:{port}/x.wav",
    "http://127.0.0.1.:{port}/x.wav",
    "http://[::ffff:127.0.0.1]:{port}/x.wav",
    "http://user:pw@\uff11\uff12\uff17.0.0.1:{port}/x.wav",
]


@asynccontextmanager
async def canary() -> AsyncIterator[tuple[int, list[object]]]:
    """A TCP listener on 127.0.0.1 that records every connection it accepts."""
    seen: list[object] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername"))
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def redirector(location: str) -> AsyncIterator[str]:
    """A trusted recording host on 127.0.0.2 that redirects every request to ``location``."""

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    app = web.Application()
    app.router.add_get("/r", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.2", 0).start()
    try:
        yield f"http://127.0.0.2:{runner.addresses[0][1]}/r"
    finally:
        await runner.cleanup()


async def transfer(tmp_path: Path, url: str, hosts: list[str]) -> TransferResult:
    policy = HostPolicy(hosts, API)
    connector = guarded_connector(policy, limit=4, limit_per_host=4)
    call = CallRecord(
        provider=Provider.CDR_V2,
        cdr_id="c1",
        sip_call_id="s1",
        started_at=datetime(2021, 2, 17, 10, tzinfo=HCM),
        recording_url=url,
    )
    config = TransferConfig(StorageSettings(part_size=5 << 20), tz=HCM)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
    ):
        return await Transferrer(session, store, policy, config).transfer(call)


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_no_spelling_of_loopback_reaches_a_canary(tmp_path: Path, spelling: str) -> None:
    async with canary() as (port, seen):
        result = await transfer(tmp_path, spelling.format(port=port), [])
    assert seen == []
    assert result.verdict is Verdict.FAILED, result
    assert result.kind is FailureKind.HOST_NOT_ALLOWED, result
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("*.wav"))


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_no_redirect_to_a_spelling_of_loopback_reaches_a_canary(
    tmp_path: Path, spelling: str
) -> None:
    async with canary() as (port, seen), redirector(spelling.format(port=port)) as start:
        result = await transfer(tmp_path, start, ["127.0.0.2"])
    assert seen == []
    assert result.verdict is Verdict.FAILED, result
    assert result.kind is FailureKind.HOST_NOT_ALLOWED, result


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_url_check_reads_the_host_aiohttp_connects_to(spelling: str) -> None:
    with pytest.raises(HostNotAllowedError):
        HostPolicy([], API).check_url(spelling.format(port=8080))


def test_a_trusted_host_is_trusted_in_any_spelling() -> None:
    policy = HostPolicy([], "http://127.0.0.1:8080")
    for spelling in SPELLINGS:
        if not spelling.startswith("http://0:"):  # 0.0.0.0 is not the API's address
            policy.check_url(spelling.format(port=8080))


def test_the_socket_factory_refuses_what_the_url_check_never_saw() -> None:
    # The last line: an address about to be connected to, whatever the URL said.
    policy = HostPolicy(["recordings.example.vn"], API)
    with pytest.raises(HostNotAllowedError):
        policy.check_connect("127.0.0.1")
    with pytest.raises(HostNotAllowedError):
        policy.check_connect("::ffff:169.254.169.254")
    policy.check_connect("8.8.8.8")  # public: allowed (nothing is contacted here)
    # A trusted name's own resolved addresses become connectable.
    policy.check_resolved("recordings.example.vn", ["10.1.2.3"])
    policy.check_connect("10.1.2.3")


@pytest.mark.parametrize(
    "url",
    [
        "http://rec.example.vn:99999/x.wav",  # port out of range
        "http://rec.example.vn:abc/x.wav",
        "http://a..b.example.vn/x.wav",  # an empty IDNA label
        "http://[::1/x.wav",
    ],
)
async def test_a_url_the_client_cannot_request_fails_at_once_as_invalid(
    tmp_path: Path, url: str
) -> None:
    result = await transfer(tmp_path, url, [])
    assert result.verdict is Verdict.FAILED, result
    assert result.kind is FailureKind.INVALID_URL, result
    assert "invalid" in result.reason
