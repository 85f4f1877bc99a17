"""Recording hosts that never finish: a slow drip (1 byte every 1.5 s) and bodies
without Content-Length that never end, mixed with good recordings.

Through ``archiver backfill`` (the CLI as a subprocess): the good recordings are
archived, the bad ones are failed with their reason (too slow, too large), the
storage never holds more than the size limit of any of them, nothing partial is
left, and the run ends. Before the bounds, the drip held its worker for ever
(only a per-read timeout, which each byte resets) and an endless body was
written to a ``.partial`` file without end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from archiver.failures import FailureKind
from archiver.models import CallRecord, Provider
from archiver.pipeline.hosts import HostPolicy, guarded_connector
from archiver.pipeline.intake import Health
from archiver.pipeline.transfer import TransferConfig, Transferrer, TransferResult, Verdict
from archiver.settings import (
    ServiceSettings,
    StorageSettings,
    TransferSettings,
)
from archiver.simulator.audio import RecordingBytes
from archiver.storage import open_store
from tests.support.cli import archiver_env, run_cli
from tests.support.web import serve

SINCE, UNTIL = "2021-02-17", "2021-02-18"
WHEN = "2021-02-17 10:00:00"
GOOD, DRIPS, ENDLESS = 6, 2, 2
MAX_SIZE = 1024 * 1024
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
WHEN_DT = datetime(2021, 2, 17, 10, tzinfo=HCM)


def wav(n: int) -> bytes:
    return RecordingBytes(7, n, "wav", 20_000, f"call {n}").read()


async def good(request: web.Request) -> web.Response:
    return web.Response(body=wav(int(request.match_info["n"])), content_type="audio/wav")


async def drip(request: web.Request) -> web.StreamResponse:
    """A valid WAV header, then one byte every 1.5 s, for ever."""
    resp = web.StreamResponse(headers={"Content-Type": "audio/wav"})
    await resp.prepare(request)
    body = wav(99)
    for i in range(10**9):
        await resp.write(body[i % len(body) : i % len(body) + 1])
        await asyncio.sleep(1.5)
    return resp


async def endless(request: web.Request) -> web.StreamResponse:
    """Audio that never ends and announces no length (chunked)."""
    resp = web.StreamResponse(headers={"Content-Type": "audio/wav"})
    await resp.prepare(request)
    await resp.write(wav(98)[:44])
    block = bytes(64 * 1024)
    while True:
        await resp.write(block)


def page(base: str) -> dict[str, object]:
    rows = [(f"good-{n}", f"{base}/rec/{n}.wav") for n in range(GOOD)]
    rows += [(f"drip-{n}", f"{base}/drip/{n}.wav") for n in range(DRIPS)]
    rows += [(f"endless-{n}", f"{base}/endless/{n}.wav") for n in range(ENDLESS)]
    data = [
        {"id": cdr, "sip_call_id": f"sip-{cdr}", "time_started": WHEN, "recording_url": url}
        for cdr, url in rows
    ]
    return {"data": data, "limit": 1000, "offset": 0, "total": len(data)}


async def list_cdrs(request: web.Request) -> web.Response:
    q = request.query
    inside = q.get("start_date", "") <= WHEN < q.get("end_date", "9999")
    if q.get("offset", "0") != "0" or not inside:
        return web.json_response({"data": [], "limit": 1000, "offset": 0, "total": 0})
    return web.json_response(page(str(request.url.origin())))


def env(base: str, tmp_path: Path) -> dict[str, str]:
    return archiver_env(
        tmp_path,
        base=base,
        tuning={
            "ARCHIVER_SOURCE__RATE_LIMIT": "0",
            "ARCHIVER_SOURCE__PAGE_SIZE": "1000",
            "ARCHIVER_STORAGE__BUFFER_BOUND": "65536",  # the endless bodies go multipart
            "ARCHIVER_STORAGE__PART_SIZE": str(5 * 1024 * 1024),
            "ARCHIVER_MANIFEST_INTERVAL": "0.2",
            "ARCHIVER_CONCURRENCY": "4",
            "ARCHIVER_RETRY__MAX_ATTEMPTS": "2",
            "ARCHIVER_RETRY__INITIAL": "0.05",
            "ARCHIVER_RETRY__MAXIMUM": "0.1",
            "ARCHIVER_TRANSFER__MIN_THROUGHPUT": "1024",
            "ARCHIVER_TRANSFER__THROUGHPUT_WINDOW": "2",
            "ARCHIVER_TRANSFER__MAX_SIZE": str(MAX_SIZE),
        },
    )


async def test_drips_and_endless_bodies_fail_with_their_reason_the_rest_is_archived(
    tmp_path: Path,
) -> None:
    routes = {
        "/v2/cdr": list_cdrs,
        "/rec/{n}.wav": good,
        "/drip/{n}.wav": drip,
        "/endless/{n}.wav": endless,
    }
    async with serve(routes) as api:
        r = await run_cli(
            "backfill", "--since", SINCE, "--until", UNTIL, env=env(api.url, tmp_path), cwd=tmp_path
        )
    assert r.code == 3, r.out + r.err
    assert "Traceback" not in r.err
    assert f"{DRIPS + ENDLESS} recording(s) failed permanently" in r.out, r.out
    assert f"{DRIPS} x {FailureKind.TOO_SLOW.summary}" in r.out, r.out
    assert f"{ENDLESS} x {FailureKind.TOO_LARGE.summary}" in r.out, r.out
    for n in range(DRIPS):
        assert f"sip-drip-{n} (cdr drip-{n}): gave up after 2 attempts: too slow:" in r.out
    for n in range(ENDLESS):
        assert f"sip-endless-{n} (cdr endless-{n}): recording too large:" in r.out
    # Every good recording is archived, with its bytes.
    lines = []
    for path in sorted((tmp_path / "archive" / "manifests").rglob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(line["cdr_id"] for line in lines) == [f"good-{n}" for n in range(GOOD)]
    for line in lines:
        n = int(line["cdr_id"].removeprefix("good-"))
        assert line["sha256"] == hashlib.sha256(wav(n)).hexdigest()
    # The storage stayed bounded: only the good recordings, nothing partial left.
    files = [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]
    recordings = [p for p in files if "recordings" in p.parts]
    assert len(recordings) == GOOD
    assert not [p for p in files if p.name.endswith(".partial") or p.name.startswith(".")]
    assert all(p.stat().st_size <= MAX_SIZE for p in files)


async def transfer_once(tmp_path: Path, url: str, **bounds: Any) -> TransferResult:
    policy = HostPolicy([], url)
    call = CallRecord(
        provider=Provider.CDR_V2,
        cdr_id="c1",
        sip_call_id="s1",
        started_at=WHEN_DT,
        recording_url=url,
    )
    config = TransferConfig(
        StorageSettings(buffer_bound=65536, part_size=5 << 20), TransferSettings(**bounds), HCM
    )
    async with (
        aiohttp.ClientSession(connector=guarded_connector(policy, limit=2, limit_per_host=2)) as s,
        open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
    ):
        return await Transferrer(s, store, policy, config).transfer(call)


async def test_a_body_that_outlives_the_deadline_is_cut_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    async def steady(request: web.Request) -> web.StreamResponse:
        # Fast enough for any throughput floor, small enough for any size limit, endless.
        resp = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        await resp.prepare(request)
        await resp.write(wav(97)[:44])
        while True:
            await resp.write(bytes(16 * 1024))
            await asyncio.sleep(0.01)

    async with serve({"/steady.wav": steady}) as host:
        result = await transfer_once(
            tmp_path, f"{host.url}/steady.wav", deadline=1.0, max_size=1 << 40
        )
    assert result.verdict is Verdict.RETRY, result
    assert result.kind is FailureKind.DEADLINE, result
    assert "deadline" in result.reason
    assert [p for p in (tmp_path / "a").rglob("*") if p.is_file()] == []


async def test_an_announced_size_over_the_limit_is_refused_before_reading(
    tmp_path: Path,
) -> None:
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=wav(1), content_type="audio/wav")

    async with serve({"/big.wav": big}) as host:
        result = await transfer_once(tmp_path, f"{host.url}/big.wav", max_size=1024)
    assert result.verdict is Verdict.FAILED, result
    assert result.kind is FailureKind.TOO_LARGE, result
    assert f"{len(wav(1))} bytes announced" in result.reason


def test_healthz_fails_while_a_transfer_outlives_its_deadline() -> None:
    from archiver.service import Service

    # The health's clock is the test's: time moves only when it says.
    now = [1000.0]
    health = Health(transfer_deadline=30, monotonic=lambda: now[0])
    service = Service(
        health,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        ServiceSettings(stuck_after=120),
        clock=lambda: WHEN_DT,
    )
    assert service.healthy() == (True, "ok")
    with health.transferring():
        now[0] += 150  # the deadline plus stuck_after: not stuck yet
        health.beat()  # the dispatcher still turns: its heartbeat alone would say ok
        assert service.healthy() == (True, "ok")
        now[0] += 1
        health.beat()
        assert service.healthy() == (
            False,
            "a transfer has been in flight for 151s (deadline 30s)",
        )
    assert service.healthy() == (True, "ok")


def test_healthz_fails_when_the_pipeline_loop_stops_moving() -> None:
    from archiver.service import Service

    now = [1000.0]
    health = Health(monotonic=lambda: now[0])
    service = Service(
        health,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        ServiceSettings(stuck_after=120),
        clock=lambda: WHEN_DT,
    )
    now[0] += 120
    assert service.healthy() == (True, "ok")
    now[0] += 1
    assert service.healthy() == (False, "pipeline loop has not moved for 121s")
    health.beat()
    assert service.healthy() == (True, "ok")
