"""A recording of an old call is not given up at its first 404.

Through ``archiver backfill`` (the CLI) against a small cdr_v2 provider on
loopback, for calls of 2021 (far past ``ARCHIVER_RETRY__READY_DEADLINE``):

- a recording that answers 404 once, then 200, is archived in one backfill;
- a listed link that stays 404 while the provider's lookup by id gives a
  working one is archived: the last attempt asks for a fresh URL;
- a recording failed in one backfill is tried again by a re-run of the same
  range, which says so, and is archived once the host serves it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from archiver.simulator.audio import RecordingBytes
from tests.support.cli import Result, archiver_env, run_cli
from tests.support.web import serve

WHEN = "2021-02-17 10:00:00"


def wav(n: int) -> bytes:
    return RecordingBytes(7, n, "wav", 20_000, f"call {n}").read()


@dataclass
class Provider:
    """What each recording path does; changed by the tests between runs."""

    base: str = ""
    # path -> number of 404s still to answer before the recording (-1: always 404)
    missing: dict[str, int] = field(default_factory=dict)
    # cdr id -> the path the lookup by id gives (else the listed one)
    moved: dict[str, str] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def row(self, n: int) -> dict[str, Any]:
        return {
            "id": f"cdr-{n}",
            "sip_call_id": f"sip-{n}",
            "time_started": WHEN,
            "recording_url": f"{self.base}/rec/{n}.wav",
        }

    async def list_cdrs(self, request: web.Request) -> web.Response:
        q = request.query
        inside = q.get("start_date", "") <= WHEN < q.get("end_date", "9999")
        data = [self.row(n) for n in range(3)] if inside and q.get("offset") == "0" else []
        return web.json_response({"data": data, "limit": 100, "offset": 0, "total": len(data)})

    async def lookup(self, request: web.Request) -> web.Response:
        cdr = request.match_info["id"]
        n = int(cdr.removeprefix("cdr-"))
        row = self.row(n)
        if cdr in self.moved:
            row["recording_url"] = f"{self.base}{self.moved[cdr]}"
        return web.json_response({"data": row})

    async def recording(self, request: web.Request) -> web.Response:
        path = request.path
        self.hits.append(path)
        left = self.missing.get(path, 0)
        if left:
            self.missing[path] = left - 1 if left > 0 else -1
            raise web.HTTPNotFound
        n = int(request.match_info["n"])
        return web.Response(body=wav(n), content_type="audio/wav")


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    p = Provider()
    routes = {
        "/v2/cdr": p.list_cdrs,
        "/v2/cdr/{id}": p.lookup,
        "/rec/{n}.wav": p.recording,
        "/moved/{n}.wav": p.recording,
    }
    async with serve(routes) as api:
        p.base = api.url
        yield p


def env(base: str, tmp_path: Path) -> dict[str, str]:
    # The default ready deadline (a day): calls of 2021 are long past it.
    return archiver_env(
        tmp_path,
        base=base,
        tuning={
            "ARCHIVER_SOURCE__RATE_LIMIT": "0",
            "ARCHIVER_MANIFEST_INTERVAL": "0.2",
            "ARCHIVER_RETRY__INITIAL": "0.05",
            "ARCHIVER_RETRY__MAXIMUM": "0.2",
            "ARCHIVER_RETRY__NOT_READY_MIN_ATTEMPTS": "3",
        },
    )


async def backfill(provider: Provider, tmp_path: Path) -> Result:
    return await run_cli(
        "backfill",
        "--since",
        "2021-02-17",
        "--until",
        "2021-02-18",
        env=env(provider.base, tmp_path),
        cwd=tmp_path,
    )


def archived(tmp_path: Path) -> dict[str, str]:
    lines = []
    for path in sorted((tmp_path / "archive" / "manifests").rglob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return {line["cdr_id"]: line["sha256"] for line in lines}


def expected(*ns: int) -> dict[str, str]:
    return {f"cdr-{n}": hashlib.sha256(wav(n)).hexdigest() for n in ns}


async def test_a_404_then_200_recording_of_an_old_call_is_archived_in_one_backfill(
    provider: Provider, tmp_path: Path
) -> None:
    provider.missing["/rec/1.wav"] = 1
    r = await backfill(provider, tmp_path)
    assert r.code == 0, r.out + r.err
    assert archived(tmp_path) == expected(0, 1, 2)
    assert provider.hits.count("/rec/1.wav") == 2


async def test_the_last_attempt_uses_a_fresh_url_from_the_lookup_by_id(
    provider: Provider, tmp_path: Path
) -> None:
    provider.missing["/rec/2.wav"] = -1  # the listed link is gone for good
    provider.moved["cdr-2"] = "/moved/2.wav"
    r = await backfill(provider, tmp_path)
    assert r.code == 0, r.out + r.err
    assert archived(tmp_path) == expected(0, 1, 2)
    # Two attempts at the listed link, the third (the last) at the fresh one.
    assert provider.hits.count("/rec/2.wav") == 2
    assert provider.hits.count("/moved/2.wav") == 1


async def test_a_rerun_of_the_range_tries_its_failures_again_and_says_so(
    provider: Provider, tmp_path: Path
) -> None:
    provider.missing["/rec/0.wav"] = -1
    first = await backfill(provider, tmp_path)
    assert first.code == 3, first.out + first.err
    assert "1 x recording never became available" in first.out, first.out
    assert provider.hits.count("/rec/0.wav") == 3  # the minimum attempts, not one
    provider.missing["/rec/0.wav"] = 0  # the file is back
    second = await backfill(provider, tmp_path)
    assert second.code == 0, second.out + second.err
    assert "trying again 1 recording(s) of this range that failed" in second.out, second.out
    assert archived(tmp_path) == expected(0, 1, 2)
