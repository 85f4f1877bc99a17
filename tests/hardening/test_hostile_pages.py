"""A provider sending malformed CDRs among good ones, through ``archiver backfill``.

Each bad record is skipped with its reason and counted; the good ones on the
same page are archived; the run exits 0 and prints no traceback. A page that
cannot be decoded at all fails the run with one clear line, not a traceback.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from archiver.simulator.audio import RecordingBytes
from tests.support.cli import archiver_env, run_cli
from tests.support.web import serve

SINCE, UNTIL = "2021-02-17", "2021-02-18"
WHEN = "2021-02-17 10:00:00"


def wav(n: int) -> bytes:
    return RecordingBytes(7, n, "wav", 20_000, f"call {n}").read()


@asynccontextmanager
async def provider(first_page: Callable[[str], str]) -> AsyncIterator[str]:
    """A cdr_v2 API whose first page, in the window holding WHEN, is ``first_page(base_url)``
    verbatim; every other page is empty."""

    async def list_cdrs(request: web.Request) -> web.Response:
        q = request.query
        inside = q.get("start_date", "") <= WHEN < q.get("end_date", "9999")
        if q.get("offset", "0") != "0" or not inside:
            return web.json_response({"data": [], "limit": 1000, "offset": 0, "total": 0})
        base = str(request.url.origin())
        return web.Response(text=first_page(base), content_type="application/json")

    async def recording(request: web.Request) -> web.Response:
        return web.Response(body=wav(int(request.match_info["n"])), content_type="audio/wav")

    async with serve({"/v2/cdr": list_cdrs, "/rec/{n}.wav": recording}) as server:
        yield server.url


# Two attempts with short backoffs: a hostile page fails fast, one page holds everything.
TUNING = {
    "ARCHIVER_SOURCE__RATE_LIMIT": "0",
    "ARCHIVER_SOURCE__MAX_ATTEMPTS": "2",
    "ARCHIVER_SOURCE__MAX_BACKOFF": "0.05",
    "ARCHIVER_SOURCE__PAGE_SIZE": "1000",
    "ARCHIVER_MANIFEST_INTERVAL": "0.2",
}


def good(base: str, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"good-{n}",
        "sip_call_id": f"sip-{n}",
        "time_started": WHEN,
        "recording_url": f"{base}/rec/{n}.wav",
        **fields,
    }


def manifest(tmp_path: Path) -> list[dict[str, Any]]:
    lines = []
    for path in sorted((tmp_path / "archive" / "manifests").rglob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


# JSON escapes that decode to lone surrogates (json.dumps would never write them).
SURROGATE_ROWS = (
    '{"id": "bad-\\ud800", "time_started": "2021-02-17 10:00:00"}, '
    '{"id": "bad-x", "time_started": "2021-02-17 10:00:00", "press_key": "\\udcff"}, '
)


def hostile_page(base: str) -> str:
    rows: list[Any] = [
        good(base, 1),
        None,
        ["not", "an", "object"],
        {"time_started": WHEN},  # no id
        {"id": "bad-time", "time_started": "yesterday"},
        {"id": "bad-dur", "time_started": WHEN, "duration": [1]},
        {"id": "bad-type", "time_started": True},
        good(base, 2, duration=10**30, direction={"odd": 1}, extension=["1"]),
        {"id": "bad-date", "time_started": "2021-13-45 99:00:00"},
        good(base, 3, sip_call_id="../../../etc/passwd\x00"),
        good(base, 4, sip_call_id="x" * 10_000),
        good(base, 5, sip_call_id="Nguyễn/Văn\\A\u202e.wav"),
        {"id": "bad-ts", "time_started": 1e300},
    ]
    body = json.dumps({"data": rows, "limit": 1000, "offset": 0, "total": len(rows) + 2})
    return body.replace('"data": [', '"data": [' + SURROGATE_ROWS, 1)


async def test_bad_records_are_skipped_and_counted_good_ones_archived(tmp_path: Path) -> None:
    async with provider(hostile_page) as base:
        r = await run_cli(
            "backfill",
            "--since",
            SINCE,
            "--until",
            UNTIL,
            env=archiver_env(tmp_path, base=base, tuning=TUNING),
            cwd=tmp_path,
        )
    assert r.code == 0, r.out + r.err
    assert "Traceback" not in r.err
    assert "10 unreadable CDR(s) skipped" in r.out, r.out
    assert r.err.count("skipped a CDR the provider sent") == 10, r.err
    assert "not valid Unicode" in r.err
    lines = manifest(tmp_path)
    assert sorted(line["cdr_id"] for line in lines) == [f"good-{n}" for n in range(1, 6)]
    root = (tmp_path / "archive").resolve()
    for line in lines:
        n = int(line["cdr_id"].removeprefix("good-"))
        assert line["sha256"] == hashlib.sha256(wav(n)).hexdigest()
        key = line["object_key"]
        assert key.startswith("recordings/2021/02/17/")
        assert "/" not in key.removeprefix("recordings/2021/02/17/")
        assert (root / key).resolve().is_relative_to(root)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"data": [{"id": "a", "duration": ' + "9" * 5000 + "}]}", id="huge-int"),
        pytest.param('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", id="deep-nesting"),
        pytest.param('{"data": [{"id": "a"', id="cut-short"),
        pytest.param("\udcff".encode("utf-8", "surrogateescape").decode("latin-1"), id="bad-utf8"),
    ],
)
async def test_an_undecodable_page_fails_the_run_with_one_line(tmp_path: Path, body: str) -> None:
    async with provider(lambda base: body) as base:
        r = await run_cli(
            "backfill",
            "--since",
            SINCE,
            "--until",
            UNTIL,
            env=archiver_env(tmp_path, base=base, tuning=TUNING),
            cwd=tmp_path,
        )
    assert r.code == 1, r.out + r.err
    assert "Traceback" not in r.err, r.err
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("archiver: GET http://127.0.0.1:"), last
    assert "not JSON" in last
