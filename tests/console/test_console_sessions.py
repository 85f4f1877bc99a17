"""Sign-in and sessions under attack (OWASP ASVS V2, V3): over real HTTP on loopback.

Each test here failed on the console before sessions were persisted and
stamped, the throttle replaced the lock-out, Argon2 left the event loop, the
proxy stopped minting sessions, and the framework's own errors were made safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict

from archiver.console.auth import Account, Role, hash_password, read_accounts, write_accounts
from archiver.console.media import GRANT_RANGE
from archiver.console.sessions import Sessions
from archiver.console.tables import SCHEMA
from archiver.index_db import IndexDatabase
from archiver.settings import StorageSettings
from tests.support.cli import cli_env
from tests.support.console import (
    PASSWORD,
    archived_storage,
    console_user,
    csrf_of,
    export_records,
    first_call_id,
    running_console,
    signed_in,
)

pytestmark = pytest.mark.timeout(300)


async def sign_in(http: aiohttp.ClientSession, user: str, password: str, **headers: str) -> int:
    """POST the sign-in form as a browser would; the status."""
    async with http.get("/login", headers=headers) as resp:
        token = csrf_of(await resp.text())
    form = {"user": user, "password": password, "csrf": token}
    async with http.post("/login", data=form, headers=headers, allow_redirects=False) as resp:
        return resp.status


async def status_of(http: aiohttp.ClientSession, path: str = "/", **headers: str) -> int:
    async with http.get(path, headers=headers, allow_redirects=False) as resp:
        return resp.status


async def test_a_new_password_a_removal_or_a_readded_account_ends_sessions_for_good(
    local_archive, tmp_path
):
    users = tmp_path / "users"
    env = cli_env({"ARCHIVER_CONSOLE__USERS_FILE": str(users)})
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "viewer") as http:
            assert await status_of(http) == 200
            result = await console_user(
                env,
                tmp_path,
                "passwd",
                "viewer",
                "--password-stdin",
                password="another long password",
            )
            assert result.code == 0, result.err
            assert "signed out" in result.out
            assert await status_of(http) == 303  # the old session is gone
            # And stays gone when the old password comes back (a fresh salt, a new stamp).
            result = await console_user(
                env, tmp_path, "passwd", "viewer", "--password-stdin", password=PASSWORD
            )
            assert result.code == 0, result.err
            assert await status_of(http) == 303
        async with signed_in(console.url, "listener") as http:
            assert await status_of(http) == 200
            accounts = read_accounts(users)
            del accounts["listener"]
            write_accounts(users, accounts)  # removed while the session is idle...
            accounts["listener"] = Account("listener", Role.LISTENER, hash_password(PASSWORD))
            write_accounts(users, accounts)  # ...and added again with the same password
            assert await status_of(http) == 303  # the idle session is not revived
        result = await console_user(
            env, tmp_path, "passwd", "nobody", "--password-stdin", password=PASSWORD
        )
        assert result.code == 2
        assert "no such user: nobody" in result.err


async def test_sessions_survive_a_restart_and_the_file_holds_no_usable_token(
    local_archive, tmp_path
):
    jar = aiohttp.CookieJar(unsafe=True)
    async with running_console(local_archive, tmp_path) as console:
        async with aiohttp.ClientSession(console.url, cookie_jar=jar) as http:
            assert await sign_in(http, "officer", PASSWORD) == 303
    token = next(c.value for c in jar if c.key == "archiver_console")
    raw = (tmp_path / "console.sqlite3").read_bytes()
    assert token.encode() not in raw  # only its SHA-256 is stored
    async with running_console(local_archive, tmp_path) as console:
        async with aiohttp.ClientSession(console.url, cookie_jar=jar) as http:
            assert await status_of(http) == 200  # still signed in after the restart
            async with http.get("/") as resp:
                csrf = csrf_of(await resp.text())
            async with http.post("/logout", data={"csrf": csrf}, allow_redirects=False) as resp:
                assert resp.status == 303
            assert await status_of(http) == 303


async def test_wrong_passwords_slow_the_guesser_and_never_lock_out_the_user(
    local_archive, tmp_path
):
    # Behind the recommended reverse proxy every connection comes from its address;
    # the client's own address comes in X-Forwarded-For, believed from the proxy only.
    overrides = {"login_attempts": 3, "proxy_addresses": ["127.0.0.1"]}
    attacker = {"X-Forwarded-For": "192.0.2.66"}
    user = {"X-Forwarded-For": "198.51.100.7"}
    async with running_console(local_archive, tmp_path, **overrides) as console:
        async with signed_in(console.url, None) as http:
            for _ in range(4):
                assert await sign_in(http, "officer", "guess", **attacker) in (401, 429)
            async with http.get("/login", headers=attacker) as resp:
                token = csrf_of(await resp.text())
            form = {"user": "officer", "password": PASSWORD, "csrf": token}
            async with http.post(
                "/login", data=form, headers=attacker, allow_redirects=False
            ) as resp:
                assert resp.status == 429  # the guessing address waits, right password or not
                assert int(resp.headers["Retry-After"]) >= 1
            # Twenty failures for another user from the attacker do not stop the
            # others behind the same proxy either.
            for _ in range(3):
                await sign_in(http, "viewer", "guess", **attacker)
        async with signed_in(console.url, None) as http:
            assert await sign_in(http, "officer", PASSWORD, **user) == 303  # slowed, not locked
            assert await status_of(http) == 200
        async with signed_in(console.url, None) as http:
            assert await sign_in(http, "viewer", PASSWORD, **user) == 303
        # A client's own X-Forwarded-For from anywhere but the proxy is not believed.
        forged = CIMultiDict({"X-Forwarded-For": "203.0.113.9"})
        assert console.console.proxy.client_address("192.0.2.1", forged) == "192.0.2.1"


async def test_argon2_runs_off_the_event_loop_a_bounded_number_at_a_time(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path, login_attempts=1000) as console:
        hashing = console.console.hashing
        async with signed_in(console.url, "officer") as officer:

            async def guess(number: int) -> int:
                async with signed_in(console.url, None) as http:
                    return await sign_in(
                        http, "viewer", f"wrong {number}", **{"X-Forwarded-For": f"10.0.0.{number}"}
                    )

            guesses = [asyncio.create_task(guess(n)) for n in range(20)]
            # The officer's search is answered while the guesses hash.
            async with officer.get("/?go=1") as resp:
                assert resp.status == 200
            assert sorted(set(await asyncio.gather(*guesses))) == [401]
    assert hashing.peak == hashing.limit  # they queued for the bounded slots...
    assert hashing.running == 0


async def test_proxied_requests_without_a_cookie_create_no_session(local_archive, tmp_path):
    overrides = {"proxy_header": "X-Forwarded-User", "proxy_addresses": ["127.0.0.1"]}
    async with running_console(local_archive, tmp_path, **overrides) as console:
        async with aiohttp.ClientSession(console.url) as http:  # no cookie jar kept
            for _ in range(200):
                async with http.get("/", headers={"X-Forwarded-User": "officer"}) as resp:
                    assert resp.status == 200
                    assert "archiver_console" not in resp.cookies
            async with http.get("/", headers={"X-Forwarded-User": "officer"}) as resp:
                csrf = csrf_of(await resp.text())
            # The pages' CSRF token works on the next request: it is derived, not stored.
            headers = {"X-Forwarded-User": "officer", "X-CSRF-Token": csrf}
            async with http.post("/logout", headers=headers, allow_redirects=False) as resp:
                assert resp.status == 303
            other = {"X-Forwarded-User": "viewer", "X-CSRF-Token": csrf}
            async with http.post("/logout", headers=other, allow_redirects=False) as resp:
                assert resp.status == 403  # another user's token is not this one's
        assert await console.console.sessions.count() == 0


async def test_session_work_does_not_grow_with_the_number_of_sessions(tmp_path):
    db = IndexDatabase(tmp_path / "console.sqlite3", SCHEMA)
    sessions = Sessions(db, 3600)
    account = Account("ana", Role.VIEWER, hash_password(PASSWORD))

    async def steps_of(action) -> int:
        """SQLite virtual-machine steps ``action`` costs (counted, never timed)."""
        counter = [0]

        def tick() -> int:
            counter[0] += 1
            return 0

        await db.run(lambda conn: conn.set_progress_handler(tick, 1))
        await action()
        await db.run(lambda conn: conn.set_progress_handler(None, 1))
        return counter[0]

    async def costs() -> tuple[int, int]:
        token, _ = await sessions.create(account)
        create = await steps_of(lambda: sessions.create(account))
        get = await steps_of(lambda: sessions.get(token))
        return create, get

    small = await costs()

    def many(conn):
        with conn:
            conn.executemany(
                "INSERT INTO sessions (token_hash, user, role, stamp, csrf, expires) "
                "VALUES (?, 'x', 1, 's', 'c', ?)",
                (
                    (hashlib.sha256(str(n).encode()).digest(), time.time() + 3600)
                    for n in range(50_000)
                ),
            )

    await db.run(many)
    large = await costs()
    assert large[0] <= small[0] * 1.5 + 50, (small, large)  # a few B-tree levels more at most
    assert large[1] <= small[1] * 1.5 + 50, (small, large)
    db.close()


async def test_an_identity_header_sent_twice_is_refused(local_archive, tmp_path):
    overrides = {"proxy_header": "X-Forwarded-User", "proxy_addresses": ["127.0.0.1"]}
    async with running_console(local_archive, tmp_path, **overrides) as console:
        async with aiohttp.ClientSession(console.url) as http:
            headers = [("X-Forwarded-User", "officer"), ("X-Forwarded-User", "viewer")]
            async with http.get("/", headers=headers, allow_redirects=False) as resp:
                assert resp.status == 400
                assert resp.headers["X-Frame-Options"] == "DENY"


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_the_frameworks_own_errors_carry_the_headers_and_echo_nothing(
    local_archive, tmp_path
):
    secret = "S" * 9000  # a cookie longer than aiohttp reads: its 400 used to echo it back
    async with running_console(local_archive, tmp_path) as console:
        port = int(console.url.rsplit(":", 1)[1])
        for request in (
            f"GET / HTTP/1.1\r\nHost: x\r\nCookie: archiver_console={secret}\r\n\r\n".encode(),
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope-" + secret.encode() + b"\r\n\r\n",
            b"G\x00T /" + secret.encode() + b" HTTP/1.1\r\n\r\n",
        ):
            answer = await asyncio.to_thread(_raw_request, port, request)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head[:10] in (b"HTTP/1.1 4", b"HTTP/1.0 4"), head[:40]
            assert b"Content-Security-Policy: default-src 'none'" in head
            assert b"X-Frame-Options: DENY" in head
            assert secret[:64].encode() not in answer  # nothing of the request comes back


async def test_a_change_from_another_site_is_refused(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "officer") as http:
            host = console.url.removeprefix("http://")
            for headers in (
                {"Origin": "https://evil.example"},
                {"Origin": "null"},
                {"Sec-Fetch-Site": "cross-site"},
                {"Sec-Fetch-Site": "same-site"},
            ):
                async with http.post(
                    "/logout", data={"csrf": http.csrf}, headers=headers, allow_redirects=False
                ) as resp:
                    assert resp.status == 403, headers
                form = {"user": "officer", "password": PASSWORD, "csrf": "x"}
                async with http.post("/login", data=form, headers=headers) as resp:
                    assert resp.status == 403, headers
            assert await status_of(http) == 200  # still signed in: nothing was done
            same = {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
            async with http.post(
                "/logout", data={"csrf": http.csrf}, headers=same, allow_redirects=False
            ) as resp:
                assert resp.status == 303


@pytest.fixture(scope="module")
def _big_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console-big")
    storage = StorageSettings(url=str(root / "archive"))
    asyncio.run(archived_storage(storage, root / "builder", calls=2, fixed_size=9_000_000))
    return root / "archive"


@pytest.fixture
def big_archive(_big_archive: Path, tmp_path: Path) -> StorageSettings:
    import shutil

    target = tmp_path / "archive"
    shutil.copytree(_big_archive, target)
    return StorageSettings(url=str(target))


async def test_a_play_grant_streams_ranges_of_at_most_a_mib(big_archive, tmp_path):
    async with running_console(big_archive, tmp_path) as console:
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http)
            item = await console.console.calls.get(call_id)
            size = item.call.size
            assert size > 2 * GRANT_RANGE
            async with http.post(
                f"/calls/{call_id}/play", data={"csrf": http.csrf, "reason": "complaint 9"}
            ) as resp:
                src = (await resp.json())["src"]
            async with http.get(src) as resp:  # no Range: still only the first MiB
                assert resp.status == 206
                assert resp.headers["Content-Range"] == f"bytes 0-{GRANT_RANGE - 1}/{size}"
                assert len(await resp.read()) == GRANT_RANGE
            async with http.get(src, headers={"Range": "bytes=0-"}) as resp:
                assert resp.status == 206
                assert len(await resp.read()) == GRANT_RANGE
            start = size - GRANT_RANGE - 10
            async with http.get(src, headers={"Range": f"bytes={start}-"}) as resp:
                assert resp.headers["Content-Range"] == (
                    f"bytes {start}-{start + GRANT_RANGE - 1}/{size}"
                )
            async with http.get(src, headers={"Range": "bytes=-100"}) as resp:
                assert len(await resp.read()) == 100


async def test_exports_are_capped_in_bytes_and_per_user_and_audited_as_they_ended(
    big_archive, tmp_path
):
    async with running_console(big_archive, tmp_path, export_max_bytes=10_000_000) as console:
        async with signed_in(console.url, "exporter") as http:
            ids = [str(i.id) for i in await console.console.calls.many([1, 2])]
            form = [("csrf", http.csrf), ("reason", "case 4"), *(("ids", i) for i in ids)]
            async with http.post("/export", data=aiohttp.FormData(form)) as resp:
                assert resp.status == 413  # 18 MB of recordings against a 10 MB cap
                assert "ARCHIVER_CONSOLE__EXPORT_MAX_BYTES" in await resp.text()
            one = [("csrf", http.csrf), ("reason", "case 4"), ("ids", ids[0])]
            console.console.exporting["exporter"] = 1  # another export of this user streams
            async with http.post("/export", data=aiohttp.FormData(one)) as resp:
                assert resp.status == 429
            del console.console.exporting["exporter"]
            # An export the client abandons after its first bytes is audited as aborted.
            async with http.post("/export", data=aiohttp.FormData(one)) as resp:
                assert resp.status == 200
                await resp.content.readexactly(65536)
                resp.close()
            records = await export_records(console.store, 2)
            ended = [r for r in records if r["result"] != "started"]
            assert [r["result"] for r in records] == ["started", "aborted"], records
            assert ended[0]["details"]["outcome"].startswith("aborted at ")
            assert 0 < ended[0]["details"]["sent_bytes"] < 9_000_000
            assert console.console.exporting == {}
            async with http.post("/export", data=aiohttp.FormData(one)) as resp:
                blob = await resp.read()
            records = await export_records(console.store, 4)
            assert records[-1]["result"] == "ok"
            assert records[-1]["details"]["outcome"] == "complete"
            assert records[-1]["details"]["sent_bytes"] == len(blob)
            assert json.dumps(records[-1]["details"]["reason"]) == '"case 4"'
