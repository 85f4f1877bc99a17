"""The simulated provider, driven over real HTTP on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import time
import wave
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from archiver.simulator import Faults, SimCall, SimConfig, Simulator
from tests.support.stepped import Skewed

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
AUTH = {"Authorization": "Bearer sim-token"}
CREDS = {"api_key": "sim-key", "api_secret": "sim-secret"}
SMALL: dict[str, Any] = {"min_size": 40_000, "max_size": 120_000}

DEFAULT_FIELDS = {
    "id", "sip_call_id", "cause", "duration", "direction", "recording_url", "extension",
    "from_number", "to_number", "receive_dest", "time_started", "time_answered", "time_ended",
    "status", "app", "press_key", "username", "firstname", "middlename", "lastname",
}  # fmt: skip
FLEX_FIELDS = {
    "cdrId", "sip_call_id", "recordFile", "extensionId", "to", "hangupAt", "answeredAt",
    "ringAt", "dialAt", "status", "duration", "direction", "billsec", "customerId",
}  # fmt: skip
FLEX_STATUSES = {"answered", "busy", "no-answered", "cancel", "not-available"}
EPACIFIC_FIELDS = {
    "callid", "direction", "cid_name", "source", "destination", "recording", "start", "tta",
    "duration", "pdd", "mos", "status",
}  # fmt: skip


@contextlib.asynccontextmanager
async def running(
    clock: Skewed | None = None, **config: Any
) -> AsyncIterator[tuple[Simulator, str, aiohttp.ClientSession]]:
    """A simulator served on a free loopback port (on ``clock``), and a client session."""
    sim = Simulator(SimConfig(**config), clock=clock or Skewed())
    async with sim.serve() as base, aiohttp.ClientSession() as session:
        yield sim, base, session


def local(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=TZ)


def recorded(sim: Simulator, kind: str = "direct", fmt: str | None = None) -> SimCall:
    return next(
        c
        for c in sim.calls
        if c.has_recording and c.url_kind == kind and (fmt is None or c.fmt == fmt)
    )


async def listed_url(session: aiohttp.ClientSession, base: str, call: SimCall) -> str:
    """The recording URL cdr_v2 gives for the call, whatever the record's mapping."""
    async with session.get(f"{base}/v2/cdr/{call.cdr_id}", headers=AUTH) as resp:
        assert resp.status == 200
        record = await resp.json()
    url = record.get("recording_url", record.get("recordFile"))
    assert isinstance(url, str)
    return url


async def epacific(
    session: aiohttp.ClientSession, base: str, body: dict[str, Any], *, form: bool = False
) -> tuple[int, dict[str, Any]]:
    kwargs: dict[str, Any] = {"data": body} if form else {"json": body}
    async with session.post(f"{base}/cdrs/json", **kwargs) as resp:
        return resp.status, await resp.json()


# -- the seeded world ---------------------------------------------------------


def test_same_seed_same_calls_and_bytes() -> None:
    a, b = Simulator(SimConfig(seed=5, calls=30)), Simulator(SimConfig(seed=5, calls=30))
    assert a.calls == b.calls
    assert [c.sha256() for c in a.calls] == [c.sha256() for c in b.calls]
    assert [c.started_at for c in a.calls] == sorted(c.started_at for c in a.calls)
    other = Simulator(SimConfig(seed=6, calls=30))
    assert {c.cdr_id for c in other.calls}.isdisjoint(c.cdr_id for c in a.calls)
    later = a.calls[-1].started_at + timedelta(minutes=5)
    added_a, added_b = a.add_calls(3, later), b.add_calls(3, later)
    assert added_a == added_b
    assert [c.started_at for c in added_a] == [later + timedelta(seconds=i) for i in range(3)]
    assert added_a[0].sha256() == added_b[0].sha256()


def test_calls_are_spread_and_shaped_as_configured() -> None:
    config = SimConfig(seed=2, calls=300)
    sim = Simulator(config)
    assert all(config.start <= c.started_at < config.start + config.span for c in sim.calls)
    with_recording = [c for c in sim.calls if c.has_recording]
    assert 0.7 < len(with_recording) / len(sim.calls) < 0.9
    assert all(config.min_size <= c.size <= config.max_size for c in with_recording)
    assert {c.fmt for c in with_recording} == {"wav", "mp3"}
    assert {c.url_kind for c in with_recording} == {"direct", "redirect", "signed"}
    assert {c.direction for c in sim.calls} == {"inbound", "outbound", "local"}
    fixed = Simulator(SimConfig(calls=5, fixed_size=12_345, recording_fraction=1.0))
    assert all(len(c.content()) == 12_345 for c in fixed.calls)


def test_wav_recording_is_valid_pcm() -> None:
    sim = Simulator(SimConfig(calls=40, **SMALL))
    call = recorded(sim, fmt="wav")
    data = call.content()
    assert len(data) == call.size
    assert hashlib.sha256(data).hexdigest() == call.sha256()
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == (call.size - 44) // 2
        assert len(wav.readframes(wav.getnframes())) == call.size - 44


def test_mp3_recording_is_id3_then_frames() -> None:
    sim = Simulator(SimConfig(calls=40, **SMALL))
    call = recorded(sim, fmt="mp3")
    data = call.content()
    assert len(data) == call.size
    assert data[:3] == b"ID3"
    tag_end = 10 + sum(b << (7 * (3 - i)) for i, b in enumerate(data[6:10]))
    assert data[tag_end : tag_end + 4] == b"\xff\xfb\x90\x00"
    assert data[tag_end + 417 : tag_end + 421] == b"\xff\xfb\x90\x00"
    assert data[tag_end + 417 * 50 : tag_end + 417 * 50 + 2] == b"\xff\xfb"


# -- recordings over HTTP -----------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
async def test_download_has_exact_length_and_digest(fmt: str) -> None:
    async with running(calls=40) as (sim, base, session):
        call = recorded(sim, fmt=fmt)
        url = await listed_url(session, base, call)
        assert url == f"{base}/recordings/{call.cdr_id}.{fmt}"
        async with session.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == call.content_type
            assert resp.content_length == call.size
            digest, size = hashlib.sha256(), 0
            async for chunk in resp.content.iter_chunked(65536):
                digest.update(chunk)
                size += len(chunk)
        assert (size, digest.hexdigest()) == (call.size, call.sha256())
        assert sim.stats[f"rec:{call.cdr_id}"] == 1
        async with session.get(f"{base}/recordings/no-such-call.wav") as resp:
            assert resp.status == 404


async def test_range_request_gives_the_tail() -> None:
    async with running(calls=20, **SMALL) as (sim, base, session):
        call = recorded(sim)
        headers = {"Range": "bytes=1000-"}
        async with session.get(f"{base}/recordings/{call.filename}", headers=headers) as resp:
            assert resp.status == 206
            assert await resp.read() == call.content()[1000:]


async def test_directory_listing_links_every_recording_once() -> None:
    async with running(calls=40, **SMALL) as (sim, base, session):
        async with session.get(f"{base}/recordings/") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            page = await resp.text()
        links = re.findall(r'<a href="([^"]+)">', page)
        assert links == [c.filename for c in sim.calls if c.has_recording]
        assert len(links) < len(sim.calls)  # calls without a recording are not listed
        # What a directory-copying client does with a link: resolve it against the page.
        first = sim.find(links[0].rpartition(".")[0])
        assert first is not None
        async with session.get(f"{base}/recordings/{links[0]}") as resp:
            assert resp.status == 200
            assert hashlib.sha256(await resp.read()).hexdigest() == first.sha256()


async def test_redirect_leads_to_the_recording() -> None:
    async with running(calls=40, **SMALL) as (sim, base, session):
        call = recorded(sim, "redirect")
        url = await listed_url(session, base, call)
        assert url == f"{base}/r/{call.cdr_id}"
        async with session.get(url, allow_redirects=False) as resp:
            assert resp.status == 302
            assert resp.headers["Location"] == f"{base}/recordings/{call.filename}"
        async with session.get(url) as resp:
            assert resp.status == 200
            assert hashlib.sha256(await resp.read()).hexdigest() == call.sha256()


async def test_signed_url_works_then_expires() -> None:
    clock = Skewed()
    faults = Faults(signed_ttl=2.0)
    async with running(clock, calls=40, faults=faults, **SMALL) as (sim, base, session):
        call = recorded(sim, "signed")
        url = await listed_url(session, base, call)
        assert url.startswith(f"{base}/signed/{call.filename}?expires=")
        async with session.get(url) as resp:
            assert resp.status == 200
            assert hashlib.sha256(await resp.read()).hexdigest() == call.sha256()
        async with session.get(url.replace("signature=", "signature=0")) as resp:
            assert resp.status == 403
        expires = int(parse_qs(urlsplit(url).query)["expires"][0])
        clock.advance(max(expires - clock(), 0) + 0.05)
        async with session.get(url) as resp:
            assert resp.status == 403
        assert sim.stats["signed_rejected"] == 2
        assert await listed_url(session, base, call) != url  # a fresh link each time


@pytest.mark.parametrize("fault", ["rec_reset", "rec_truncated"])
async def test_broken_downloads_raise_payload_errors(fault: str) -> None:
    async with running(calls=20, faults=Faults.from_dict({fault: 1.0})) as (sim, base, session):
        call = recorded(sim)
        async with session.get(f"{base}/recordings/{call.filename}") as resp:
            assert resp.status == 200
            if fault == "rec_reset":
                assert resp.content_length is None
                assert resp.headers["Transfer-Encoding"] == "chunked"
            else:
                assert resp.content_length == call.size
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        assert sim.stats[f"fault:{fault}"] == 1


async def test_html_and_503_recording_faults() -> None:
    async with running(calls=20, faults=Faults(rec_html=1.0)) as (sim, base, session):
        url = f"{base}/recordings/{recorded(sim).filename}"
        async with session.get(url) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert "<html>" in await resp.text()
        sim.set_faults(Faults(rec_5xx=1.0))
        async with session.get(url) as resp:
            assert resp.status == 503
        assert sim.stats["fault:rec_html"] == sim.stats["fault:rec_5xx"] == 1


async def test_late_recording_404s_until_ready() -> None:
    # Long enough that the second GET comes well within it on a loaded machine;
    # then the test moves the simulator's clock past it instead of waiting.
    faults = Faults(not_ready_fraction=1.0, not_ready_seconds=60)
    clock = Skewed()
    async with running(clock, calls=20, faults=faults, **SMALL) as (sim, base, session):
        url = f"{base}/recordings/{recorded(sim).filename}"
        async with session.get(url) as resp:
            assert resp.status == 404
        async with session.get(url) as resp:
            assert resp.status == 404
        clock.advance(60.05)
        async with session.get(url) as resp:
            assert resp.status == 200
            await resp.read()
        assert sim.stats["fault:not_ready"] == 2
    partial = Simulator(SimConfig(calls=200, faults=Faults(not_ready_fraction=0.3)))
    assert 0.15 < sum(partial.recording_late(c) for c in partial.calls) / 200 < 0.45


# -- cdr_v2 -------------------------------------------------------------------


async def collect_cdr_v2(
    session: aiohttp.ClientSession, base: str, *, limit: int, scroll: bool, **params: str
) -> tuple[list[dict[str, Any]], list[int]]:
    """Every record over every page, and each page's length."""
    records: list[dict[str, Any]] = []
    sizes: list[int] = []
    offset = 0
    while True:
        query = {**params, "limit": str(limit), "offset": str(offset)}
        async with session.get(f"{base}/v2/cdr", params=query, headers=AUTH) as resp:
            assert resp.status == 200
            page = await resp.json()
        if not page["data"]:
            return records, sizes
        records += page["data"]
        sizes.append(len(page["data"]))
        if len(page["data"]) < page["limit"]:
            return records, sizes
        offset = page["offset"] if scroll else offset + limit
        assert len(sizes) < 100, "paging does not end"


def cdr_id(record: dict[str, Any]) -> str:
    return str(record.get("id", record.get("cdrId"))).strip()


async def test_pagination_mode_returns_every_call_once() -> None:
    async with running(calls=47) as (sim, base, session):
        records, sizes = await collect_cdr_v2(session, base, limit=7, scroll=False)
        assert [cdr_id(r) for r in records] == [c.cdr_id for c in sim.calls]
        assert sizes == [7] * 6 + [5]
        query = {"limit": "5", "page": "3"}
        async with session.get(f"{base}/v2/cdr", params=query, headers=AUTH) as resp:
            page = await resp.json()
        assert (page["limit"], page["offset"], page["total"]) == (5, 10, 47)
        assert [cdr_id(r) for r in page["data"]] == [c.cdr_id for c in sim.calls[10:15]]


async def test_scroll_mode_ignores_limit_and_returns_a_cursor() -> None:
    async with running(calls=35, paging="scroll") as (sim, base, session):
        records, sizes = await collect_cdr_v2(session, base, limit=100, scroll=True)
        assert [cdr_id(r) for r in records] == [c.cdr_id for c in sim.calls]
        assert sizes == [10, 10, 10, 5]
        async with session.get(f"{base}/v2/cdr?limit=100&offset=20", headers=AUTH) as resp:
            page = await resp.json()
        assert (page["limit"], page["offset"], page["total"]) == (10, 30, 35)


@pytest.mark.parametrize("calls", [35, 40])
async def test_shift_pages_with_scroll_repeats_one_record_per_boundary(calls: int) -> None:
    async with running(calls=calls, paging="scroll", shift_pages=True) as (sim, base, session):
        records, sizes = await collect_cdr_v2(session, base, limit=10, scroll=True)
    ids = [cdr_id(r) for r in records]
    assert set(ids) == {c.cdr_id for c in sim.calls}
    counts = Counter(ids)
    assert sorted(counts.values()) == [1] * (calls - len(sizes) + 1) + [2] * (len(sizes) - 1)
    for page in range(1, len(sizes)):  # each page opens with the previous page's last record
        boundary = sum(sizes[:page])
        assert ids[boundary] == ids[boundary - 1]


@pytest.mark.parametrize("calls", [35, 40])
async def test_shift_pages_with_pagination_starts_later_pages_one_early(calls: int) -> None:
    async with running(calls=calls, shift_pages=True) as (sim, base, session):
        records, sizes = await collect_cdr_v2(session, base, limit=10, scroll=False)
    ids = [cdr_id(r) for r in records]
    in_order = [c.cdr_id for c in sim.calls]
    # Offsets 0, 10, 20... serve [0, 10), [9, 19), [19, 29)...: the first two
    # pages share a record; with 40 calls the last one comes only at offset 40.
    assert ids == in_order[:10] + in_order[9:]
    assert len(sizes) == (5 if calls == 40 else 4)


async def test_cdr_v2_refuses_missing_or_wrong_token() -> None:
    async with running(calls=5) as (sim, base, session):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "sim-token"}):
            async with session.get(f"{base}/v2/cdr", headers=headers) as resp:
                assert resp.status == 401
                assert await resp.json() == {"error": "unauthorized"}
        async with session.get(f"{base}/v2/cdr/{sim.calls[0].cdr_id}") as resp:
            assert resp.status == 401
        assert sim.stats["auth_failures"] == 4


async def test_mixed_mapping_serves_both_shapes_with_the_seed_quirks() -> None:
    async with running(calls=120) as (sim, base, session):
        records, _ = await collect_cdr_v2(session, base, limit=500, scroll=False)
    defaults = [r for r in records if "id" in r]
    flexes = [r for r in records if "cdrId" in r]
    assert defaults
    assert flexes
    assert len(defaults) + len(flexes) == 120
    for record in defaults:
        extra = set(record) - DEFAULT_FIELDS
        assert extra in ({"lead_id"}, {"customer_id"})
        assert record["status"] in {"ANSWERED", "BUSY", "NO_ANSWER", "CANCEL", "NOT_AVAILABLE"}
        assert (record["time_answered"] == "") == (record["status"] != "ANSWERED")
    assert all(set(r) == FLEX_FIELDS for r in flexes)
    assert {r["status"] for r in flexes} <= FLEX_STATUSES
    assert any(r["id"].endswith(" ") for r in defaults)
    assert {type(r["direction"]) for r in defaults} == {int, str}
    directions = {c.cdr_id: c.direction for c in sim.calls}
    codes = {(r["direction"], directions[cdr_id(r)]) for r in defaults}
    assert {code for code in codes if isinstance(code[0], int)} <= {
        (1, "inbound"),
        (2, "outbound"),
        (3, "local"),
    }
    assert {type(r["press_key"]) for r in defaults} == {str, dict}
    assert {"lead_id", "customer_id"} <= {k for r in defaults for k in r}
    by_id = {cdr_id(r): r for r in records}
    for call in sim.calls:
        record = by_id[call.cdr_id]
        assert local(record.get("time_started") or record["dialAt"]) == call.started_at
        assert record["duration"] == call.duration


@pytest.mark.parametrize("mapping", ["default", "flex"])
async def test_single_cdr_lookup_by_id_or_sip_call_id(mapping: str) -> None:
    async with running(calls=30, mapping=mapping) as (sim, base, session):
        call = sim.calls[3]
        for key in (call.cdr_id, call.sip_call_id, call.cdr_id + "%20"):
            async with session.get(f"{base}/v2/cdr/{key}", headers=AUTH) as resp:
                assert resp.status == 200
                record = await resp.json()
            assert cdr_id(record) == call.cdr_id
            assert set(record) >= (FLEX_FIELDS if mapping == "flex" else DEFAULT_FIELDS)
        async with session.get(f"{base}/v2/cdr/unknown", headers=AUTH) as resp:
            assert resp.status == 404


async def test_cdr_v2_date_filter_is_start_inclusive_end_exclusive() -> None:
    async with running(calls=60) as (sim, base, session):
        start, end = sim.calls[10].started_at, sim.calls[40].started_at
        params = {
            "start_date": start.strftime("%Y-%m-%d %H:%M:%S"),
            "end_date": end.strftime("%Y-%m-%d %H:%M:%S"),
        }
        records, _ = await collect_cdr_v2(session, base, limit=500, scroll=False, **params)
        expected = [c.cdr_id for c in sim.calls if start <= c.started_at < end]
        assert [cdr_id(r) for r in records] == expected
        days = {"start_date": "2021-02-16", "end_date": "2021-02-17"}  # ends at the 17th, 00:00
        records, _ = await collect_cdr_v2(session, base, limit=500, scroll=False, **days)
        assert records == []
        days = {"start_date": "2021-02-17", "end_date": "2021-02-18"}
        records, _ = await collect_cdr_v2(session, base, limit=500, scroll=False, **days)
        assert len(records) == 60
        async with session.get(f"{base}/v2/cdr?start_date=yesterday", headers=AUTH) as resp:
            assert resp.status == 400


# -- epacific -----------------------------------------------------------------


async def test_epacific_to_covers_its_whole_minute() -> None:
    async with running(calls=200) as (sim, base, session):
        call = next(c for c in sim.calls if c.started_at.second > 0)
        minute = call.started_at.replace(second=0)
        text = minute.strftime("%Y-%m-%d %H:%M")
        body = {**CREDS, "date_range": {"from": text, "to": text}, "limit": 500}
        status, answer = await epacific(session, base, body)
        assert status == 200
        assert answer["status"] == "success"
        next_minute = minute + timedelta(minutes=1)
        expected = [c.sip_call_id for c in sim.calls if minute <= c.started_at < next_minute]
        assert call.sip_call_id in expected
        assert [r["callid"] for r in answer["data"]] == expected
        hours = {"from": "2021-02-17 09:00", "to": "2021-02-17 10:59"}
        status, answer = await epacific(session, base, {**CREDS, "date_range": hours, "limit": 500})
        low, high = datetime(2021, 2, 17, 9, tzinfo=TZ), datetime(2021, 2, 17, 11, tzinfo=TZ)
        assert [r["callid"] for r in answer["data"]] == [
            c.sip_call_id for c in sim.calls if low <= c.started_at < high
        ]
        assert answer["paging"]["record_count"] == len(answer["data"])


async def test_epacific_json_and_form_bodies_agree() -> None:
    async with running(calls=80) as (sim, base, session):
        window = {"from": "2021-02-17 08:00", "to": "2021-02-17 11:59"}
        bodies: list[tuple[dict[str, Any], bool]] = [
            ({**CREDS, "date_range": window, "page": 2, "limit": 7}, False),
            ({**CREDS, "date_range": json.dumps(window), "page": "2", "limit": "7"}, True),
            (
                {
                    **CREDS,
                    "date_range[from]": window["from"],
                    "date_range[to]": window["to"],
                    "page": "2",
                    "limit": "7",
                },
                True,
            ),
        ]
        answers = [await epacific(session, base, body, form=form) for body, form in bodies]
        assert all(status == 200 for status, _ in answers)
        assert answers[0][1] == answers[1][1] == answers[2][1]
        paging = answers[0][1]["paging"]
        count = paging["record_count"]
        assert 0 < count < 80
        assert (paging["page_current"], paging["limit"]) == (2, 7)
        assert paging["page_count"] == -(-count // 7)
        assert paging["prev_page"] is True
        assert paging["next_page"] is (count > 14)
        record = answers[0][1]["data"][0]
        assert set(record) == EPACIFIC_FIELDS
        call = sim.find(record["callid"])
        assert call is not None
        assert local(record["start"]) == call.started_at
        status, answer = await epacific(session, base, {**CREDS, "api_secret": "x"})
        assert status == 401
        assert answer == {"status": "error", "message": "invalid api_key or api_secret"}


async def test_epacific_callid_lookup_and_registered_extensions() -> None:
    async with running(calls=20) as (sim, base, session):
        call = sim.calls[5]
        status, answer = await epacific(session, base, {**CREDS, "callid": call.sip_call_id})
        assert status == 200
        assert [r["callid"] for r in answer["data"]] == [call.sip_call_id]
        assert answer["data"][0]["direction"] == call.direction
        status, answer = await epacific(session, base, {**CREDS, "callid": "nope"})
        assert (status, answer["data"], answer["paging"]["record_count"]) == (200, [], 0)
        async with session.post(f"{base}/ext_reg/json", json=CREDS) as resp:
            assert resp.status == 200
            registered = await resp.json()
        assert registered["status"] == "success"
        assert [e["extension"] for e in registered["data"]][:2] == ["100", "101"]
        assert all(e["status"] == "Registered" for e in registered["data"])
        async with session.post(f"{base}/ext_reg/json", json={}) as resp:
            assert resp.status == 401


# -- faults at runtime ----------------------------------------------------------


async def test_faults_switched_at_runtime_over_http() -> None:
    async with running(calls=10) as (sim, base, session):
        faults = {"api_429": 1.0, "retry_after": 7}
        async with session.post(f"{base}/_sim/faults", json=faults) as resp:
            assert resp.status == 200
        async with session.get(f"{base}/v2/cdr", headers=AUTH) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "7"
        async with session.post(f"{base}/_sim/faults", json={"api_5xx": 1.0}) as resp:
            assert resp.status == 200
        for _ in range(5):
            async with session.post(f"{base}/cdrs/json", json=CREDS) as resp:
                assert resp.status in (500, 502, 503)
        async with session.post(f"{base}/_sim/faults", json={"bogus": 1}) as resp:
            assert resp.status == 400
        async with session.post(f"{base}/_sim/faults", json={}) as resp:
            assert resp.status == 200
        async with session.get(f"{base}/v2/cdr", headers=AUTH) as resp:
            assert resp.status == 200
        async with session.get(f"{base}/_sim/stats") as resp:
            stats = await resp.json()
        assert stats["fault:api_429"] == 1
        assert stats["fault:api_5xx"] == 5
        assert stats["api_requests"] == 7
        assert sim.config.faults == Faults()


async def test_slow_fault_delays_answers() -> None:
    async with running(calls=5, faults=Faults(slow=1.0, slow_seconds=0.2)) as (_, base, session):
        began = time.monotonic()
        async with session.get(f"{base}/v2/cdr", headers=AUTH) as resp:
            assert resp.status == 200
        assert time.monotonic() - began >= 0.2


async def test_calls_added_later_are_listed() -> None:
    async with running(calls=10) as (sim, base, session):
        new = sim.add_calls(3)
        assert {c.index for c in new} == {10, 11, 12}
        now = datetime.now(TZ)
        assert all(now - timedelta(seconds=5) <= c.started_at <= now for c in new)
        records, _ = await collect_cdr_v2(session, base, limit=50, scroll=False)
        assert [cdr_id(r) for r in records][-3:] == [c.cdr_id for c in new]
        async with session.post(f"{base}/_sim/calls", json={"n": 2}) as resp:
            assert (await resp.json())["calls"] == 15
