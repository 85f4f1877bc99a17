"""The console under a sign-in flood: an officer's search while 20 failed sign-ins run, and
memory over 100,000 proxied requests without a cookie.

``python -m tests.bench.console_auth [--guessers 20] [--proxied 100000]`` writes a small
archive (the simulator, a local directory), serves the console in this process on
loopback, and measures:

- an officer's search (the results page, as a browser asks it), 30 times alone, then 30
  times while ``--guessers`` clients keep failing to sign in (each a fresh Argon2 check);
- the process's RSS before and after ``--proxied`` requests that the trusted proxy vouches
  for and that carry no cookie, and how many session rows the file holds afterwards.

Prints one JSON line. Figures go in docs/performance.md (never a timed test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

from archiver.settings import StorageSettings
from tests.support.console import archived_storage, csrf_of, running_console, signed_in


async def _search_times(http: aiohttp.ClientSession, times: int) -> list[float]:
    spent = []
    for number in range(times):
        start = time.perf_counter()
        async with http.get("/", params={"go": "1", "phone": f"09{number:08d}"}) as resp:
            await resp.read()
            assert resp.status == 200
        spent.append((time.perf_counter() - start) * 1000)
    return spent


async def _guess(url: str, number: int, stop: asyncio.Event) -> int:
    tries = 0
    jar = aiohttp.CookieJar(unsafe=True)  # loopback: the sign-in form's cookie comes back
    async with aiohttp.ClientSession(url, cookie_jar=jar) as http:
        while not stop.is_set():
            async with http.get("/login") as resp:
                token = csrf_of(await resp.text())
            form = {"user": "viewer", "password": f"wrong {number} {tries}", "csrf": token}
            headers = {"X-Forwarded-For": f"10.{number}.{tries % 250}.{tries // 250 % 250}"}
            async with http.post("/login", data=form, headers=headers) as resp:
                await resp.read()
                assert resp.status == 401, resp.status  # a real failed sign-in, hashed
            tries += 1
    return tries


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1], 1),
        "max": round(ordered[-1], 1),
    }


async def main(guessers: int, proxied: int) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="console-auth-"))
    storage = StorageSettings(url=str(root / "archive"))
    await archived_storage(storage, root / "builder", calls=20)
    process = psutil.Process()
    overrides = {
        "login_attempts": 1000,  # the flood must reach Argon2, not the throttle
        "proxy_addresses": ["127.0.0.1"],
        "proxy_header": "X-Forwarded-User",
    }
    async with running_console(storage, root, **overrides) as console:
        async with signed_in(console.url, "officer") as officer:
            alone = await _search_times(officer, 30)
            stop = asyncio.Event()
            flood = [asyncio.create_task(_guess(console.url, n, stop)) for n in range(guessers)]
            await asyncio.sleep(1.0)  # the flood is under way
            during = await _search_times(officer, 30)
            stop.set()
            tries = sum(await asyncio.gather(*flood))
        peak_hashes = console.console.hashing.peak
        rss_before = process.memory_info().rss
        async with aiohttp.ClientSession(console.url, cookie_jar=aiohttp.DummyCookieJar()) as http:
            semaphore = asyncio.Semaphore(32)

            async def one() -> None:
                async with semaphore:
                    async with http.get("/", headers={"X-Forwarded-User": "officer"}) as resp:
                        await resp.read()

            start = time.perf_counter()
            for chunk in range(0, proxied, 1000):
                await asyncio.gather(*(one() for _ in range(min(1000, proxied - chunk))))
            proxied_seconds = time.perf_counter() - start
        rss_after = process.memory_info().rss
        rows = await console.console.sessions.count()
    return {
        "officer_search_ms_alone": _ms(alone),
        "officer_search_ms_during_flood": _ms(during),
        "guessers": guessers,
        "failed_sign_ins_during": tries,
        "argon2_at_once_peak": peak_hashes,
        "proxied_requests": proxied,
        "proxied_seconds": round(proxied_seconds, 1),
        "rss_mib_before": round(rss_before / 2**20, 1),
        "rss_mib_after": round(rss_after / 2**20, 1),
        "session_rows_after": rows,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guessers", type=int, default=20)
    parser.add_argument("--proxied", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.guessers, args.proxied))))
