"""The console over HTTP on loopback: access, CSRF, roles, search, listen, download, export.

The archive is written by a real backfill into a local directory; the
console is a real aiohttp server; the client signs in as a browser does.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import aiohttp
import pytest

from archiver.console.auth import Role
from archiver.manifest.seal import seal
from archiver.storage import open_store
from tests.support.console import (
    PASSWORD,
    audit_records,
    csrf_of,
    first_call_id,
    manifest_calls,
    running_console,
    signed_in,
)


async def test_nothing_is_served_without_a_session(local_archive, tmp_path):
    async with (
        running_console(local_archive, tmp_path) as console,
        signed_in(console.url, None) as http,
    ):
        for path in ("/", "/calls/1", "/audit", "/audit.csv", "/?go=1&phone=090"):
            async with http.get(path, allow_redirects=False) as resp:
                assert resp.status == 303, path
                assert resp.headers["Location"] == "/login"
        async with http.get("/calls/1/audio?grant=x", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.content_length in (0, None) or "RIFF" not in await resp.text()
        for path in ("/calls/1/play", "/calls/1/download", "/calls/1/hold", "/export", "/logout"):
            async with http.post(path, data={"csrf": "x", "ids": "1"}) as resp:
                assert resp.status == 401, path
        async with http.get("/login") as resp:
            assert resp.status == 200
            assert 'id="login-form"' in await resp.text()


async def test_security_headers_and_cookie_flags(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path, cookie_secure=True) as console:
        async with aiohttp.ClientSession(console.url) as http:
            async with http.get("/login") as resp:
                token = csrf_of(await resp.text())
                assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
                assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
                assert resp.headers["X-Frame-Options"] == "DENY"
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
                login_cookie = resp.headers["Set-Cookie"]
            form = {"user": "viewer", "password": PASSWORD, "csrf": token}
            cookies = {"archiver_login": token}
            async with http.post(
                "/login", data=form, cookies=cookies, allow_redirects=False
            ) as resp:
                assert resp.status == 303
                session_cookie = [
                    v for v in resp.headers.getall("Set-Cookie") if "archiver_console=" in v
                ][0]
            async with http.get("/nothing-here", allow_redirects=False) as resp:
                assert resp.headers["X-Frame-Options"] == "DENY"
        for cookie in (login_cookie, session_cookie):
            assert "HttpOnly" in cookie
            assert "Secure" in cookie
            assert "SameSite=Strict" in cookie


async def test_sign_in_is_rate_limited_and_wrong_passwords_refused(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path, login_attempts=3) as console:
        async with signed_in(console.url, None) as http:
            for _ in range(3):
                async with http.get("/login") as resp:
                    token = csrf_of(await resp.text())
                form = {"user": "officer", "password": "wrong password", "csrf": token}
                async with http.post("/login", data=form) as resp:
                    assert resp.status == 401
            async with http.get("/login") as resp:
                token = csrf_of(await resp.text())
            form = {"user": "officer", "password": PASSWORD, "csrf": token}
            async with http.post("/login", data=form, allow_redirects=False) as resp:
                assert resp.status == 429  # even the right password, until the window passes
            # The sign-in form's own token is required too (login CSRF).
            async with http.post(
                "/login", data={"user": "viewer", "password": PASSWORD}, allow_redirects=False
            ) as resp:
                assert resp.status == 403
        async with signed_in(console.url, "viewer") as http:  # another user is not blocked
            assert http.csrf


async def test_every_change_needs_the_csrf_token(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "officer") as http:
            call_id = await first_call_id(http)
            for token in (None, "wrong", http.csrf[:-1]):
                data = {"reason": "audit 42"} | ({"csrf": token} if token else {})
                for path in (f"/calls/{call_id}/download", f"/calls/{call_id}/play", "/logout"):
                    async with http.post(path, data=data) as resp:
                        assert resp.status == 403, (path, token)
                async with http.post("/export", data={**data, "ids": str(call_id)}) as resp:
                    assert resp.status == 403
            data = {"reason": "audit 42", "csrf": http.csrf}
            async with http.post(f"/calls/{call_id}/download", data=data) as resp:
                assert resp.status == 200
            headers = {"X-CSRF-Token": http.csrf}
            async with http.post(
                f"/calls/{call_id}/play", data={"reason": "case 17 review"}, headers=headers
            ) as resp:
                assert resp.status == 200


async def test_search_by_any_spelling_of_a_number_is_audited(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        calls = await manifest_calls(console.store)
        number = next(
            str(c.fields["from_number"])
            for c in calls
            if str(c.fields.get("from_number") or "").startswith("0")
            and len(str(c.fields["from_number"])) == 10
        )
        expected = {
            c.cdr_id
            for c in calls
            if number in (c.fields.get("from_number"), c.fields.get("to_number"))
        }
        spellings = [
            number,
            "+84 " + number[1:3] + " " + number[3:],
            "84" + number[1:],
            "0084" + number[1:],
        ]
        async with signed_in(console.url, "viewer") as http:
            for spelling in spellings:
                async with http.get("/", params={"go": "1", "phone": spelling}) as resp:
                    html = await resp.text()
                assert f">{len(expected)} " in html, spelling
                for cdr in expected:
                    item = next(c for c in calls if c.cdr_id == cdr)
                    assert item.sip_call_id in html
        searches = [r for r in await audit_records(console.store) if r["action"] == "search"]
        assert len(searches) == len(spellings)
        assert {r["operator"] for r in searches} == {"viewer"}
        assert searches[0]["target"]["query"]["phone"] in spellings


async def test_roles_limit_what_each_user_may_do(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "viewer") as http:
            call_id = await first_call_id(http)
            async with http.get(f"/calls/{call_id}") as resp:
                page = await resp.text()
                assert resp.status == 200
                assert 'id="play-button"' not in page
            async with http.post(
                f"/calls/{call_id}/play", data={"csrf": http.csrf, "reason": "case 17 review"}
            ) as resp:
                assert resp.status == 403
            async with http.get("/audit") as resp:
                assert resp.status == 403
        async with signed_in(console.url, "listener") as http:
            for path in (f"/calls/{call_id}/download", "/export", f"/calls/{call_id}/hold"):
                data = {
                    "csrf": http.csrf,
                    "reason": "case 17 review",
                    "ids": str(call_id),
                    "on": "1",
                }
                async with http.post(path, data=data) as resp:
                    assert resp.status == 403, path
        async with signed_in(console.url, "exporter") as http:
            data = {"csrf": http.csrf, "reason": "case 17 review", "on": "1"}
            async with http.post(f"/calls/{call_id}/hold", data=data) as resp:
                assert resp.status == 403
            async with http.get("/audit.csv") as resp:
                assert resp.status == 403
    assert Role.VIEWER < Role.LISTENER < Role.EXPORTER < Role.OFFICER


async def test_play_gives_a_grant_and_the_audio_seeks(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        calls = {c.sip_call_id: c for c in await manifest_calls(console.store)}
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http)
            item = await console.console.calls.get(call_id)
            call = calls[item.call.sip_call_id]
            data = b"".join([c async for c in console.store.read(call.object_key)])
            async with http.post(f"/calls/{call_id}/play", data={"csrf": http.csrf}) as resp:
                assert resp.status == 400  # the reason is required
            async with http.post(
                f"/calls/{call_id}/play", data={"csrf": http.csrf, "reason": "complaint 7"}
            ) as resp:
                src = (await resp.json())["src"]
            async with http.get(f"/calls/{call_id}/audio?grant=forged") as resp:
                assert resp.status == 403
            async with http.get(src, headers={"Range": "bytes=1000-1999"}) as resp:
                assert resp.status == 206
                assert resp.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
                assert await resp.read() == data[1000:2000]
            async with http.get(src, headers={"Range": "bytes=-10"}) as resp:
                assert await resp.read() == data[-10:]
            async with http.get(src, headers={"Range": f"bytes={len(data)}-"}) as resp:
                assert resp.status == 416
            async with http.get(src) as resp:
                assert resp.headers["Accept-Ranges"] == "bytes"
                assert hashlib.sha256(await resp.read()).hexdigest() == call.sha256
        plays = [r for r in await audit_records(console.store) if r["action"] == "play"]
        assert len(plays) == 1  # one play, however many range requests
        assert plays[0]["operator"] == "listener"
        assert plays[0]["details"]["reason"] == "complaint 7"
        assert plays[0]["target"]["sip_call_id"] == call.sip_call_id


async def test_an_altered_recording_is_refused_with_the_reason(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "exporter") as http:
            call_id = await first_call_id(http)
            item = await console.console.calls.get(call_id)
            path = Path(local_archive.local_path, item.call.object_key)
            body = bytearray(path.read_bytes())
            body[500] ^= 0xFF  # same size, one byte changed
            path.write_bytes(bytes(body))
            data = {"csrf": http.csrf, "reason": "check"}
            async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 409
                error = (await resp.json())["error"]
            assert "CORRUPT" in error
            assert item.call.sha256 in error
            async with http.post(f"/calls/{call_id}/download", data=data) as resp:
                assert resp.status == 409
                assert "CORRUPT" in await resp.text()
            async with http.post("/export", data={**data, "ids": str(call_id)}) as resp:
                assert resp.status == 409
            async with http.get(f"/calls/{call_id}") as resp:
                assert "CORRUPT" in await resp.text()  # the integrity status shows it
        refused = [r for r in await audit_records(console.store) if r["result"] == "refused"]
        assert sorted(r["action"] for r in refused) == ["download", "export", "play"]


async def test_path_traversal_in_ids_and_manifest_keys(local_archive, tmp_path):
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF" + b"not yours" * 100)
    root = Path(local_archive.local_path)
    line = {
        "sip_call_id": "evil-1",
        "cdr_id": "evil-1",
        "provider": "cdr_v2",
        "object_key": "../secret.wav",
        "sha256": hashlib.sha256(secret.read_bytes()).hexdigest(),
        "size": secret.stat().st_size,
        "content_type": "audio/wav",
        "call_started_at": "2021-02-17T09:00:00+07:00",
    }
    evil = root / "manifests/date=2021-02-17/evil.jsonl"
    evil.write_text(json.dumps(line) + "\n")
    # Sealed into the chain: even a chained line must not lead outside the storage.
    async with open_store(local_archive) as store:
        assert (await seal(store)).sealed == 1
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "officer") as http:
            for path in (
                "/calls/..%2F..%2Fetc%2Fpasswd",
                "/calls/1%2F..%2F..%2Fsecret.wav",
                "/static/..%2Fauth.py",
                "/static/../auth.py",
                "/calls/-1",
                "/calls/99999999999999999999999",
            ):
                async with http.get(path) as resp:
                    assert resp.status in (403, 404), path
                    assert b"not yours" not in await resp.read()
            call_id = await first_call_id(http, id="evil-1")
            data = {"csrf": http.csrf, "reason": "case 17 review"}
            async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 409
                assert "MISSING" in (await resp.json())["error"]
            async with http.post(f"/calls/{call_id}/download", data=data) as resp:
                assert resp.status == 409
                assert b"not yours" not in await resp.read()


@pytest.mark.parametrize("allowed", ["10.0.0.0/8", "127.0.0.1"])
async def test_a_proxy_header_counts_only_from_a_proxy_address(local_archive, tmp_path, allowed):
    overrides = {
        "proxy_header": "X-Forwarded-User",
        "proxy_addresses": [allowed],
        "proxy_role": "listener",
    }
    async with running_console(local_archive, tmp_path, **overrides) as console:
        async with signed_in(console.url, None) as http:
            headers = {"X-Forwarded-User": "officer"}
            async with http.get("/", headers=headers, allow_redirects=False) as resp:
                if allowed == "10.0.0.0/8":  # the test client is 127.0.0.1: not the proxy
                    assert resp.status == 303
                    assert resp.headers["Location"] == "/login"
                else:
                    assert resp.status == 200
                    assert "officer (officer)" in await resp.text()  # the users file's role
            headers = {"X-Forwarded-User": "someone@example.vn"}
            async with http.get("/", headers=headers, allow_redirects=False) as resp:
                if allowed == "127.0.0.1":
                    assert "someone@example.vn (listener)" in await resp.text()
                else:
                    assert resp.status == 303


async def test_audit_page_filters_and_exports(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http)
            async with http.post(
                f"/calls/{call_id}/play", data={"csrf": http.csrf, "reason": "complaint 42"}
            ) as resp:
                assert resp.status == 200
        async with signed_in(console.url, "officer") as http:
            async with http.get("/audit", params={"action": "play"}) as resp:
                page = await resp.text()
            assert page.count('class="audit-row"') == 1
            assert "listener" in page
            assert "complaint 42" in page
            async with http.get("/audit.csv", params={"operator": "listener"}) as resp:
                rows = list(csv.DictReader(io.StringIO(await resp.text())))
            assert [r["action"] for r in rows] == ["play", "search"]
            assert all(r["operator"] == "listener" for r in rows)
        exports = [r for r in await audit_records(console.store) if r["action"] == "audit-export"]
        assert exports
        assert exports[0]["operator"] == "officer"


@pytest.mark.parametrize("mode", ["optional", "off"])
async def test_the_reason_can_be_optional_or_off(local_archive, tmp_path, mode):
    async with running_console(local_archive, tmp_path, reason=mode) as console:
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http)
            async with http.get(f"/calls/{call_id}") as resp:
                page = await resp.text()
            assert ('class="reason-input"' in page) == (mode == "optional")
            assert "required" not in page.split('class="reason-input"')[-1].split(">")[0]
            data = {"csrf": http.csrf, "reason": "given anyway"}
            async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 200
        (play,) = [r for r in await audit_records(console.store) if r["action"] == "play"]
        assert play["details"]["reason"] == ("given anyway" if mode == "optional" else "")


async def test_an_overwritten_recording_on_s3_is_refused(
    tmp_path, make_bucket, s3_settings, seaweed
):
    from tests.support.console import archived_storage
    from tests.support.seaweed import admin_client

    bucket = await make_bucket()
    storage = s3_settings(bucket)
    await archived_storage(storage, tmp_path / "builder", calls=2)
    async with running_console(storage, tmp_path) as console:
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http)
            item = await console.console.calls.get(call_id)
            async with admin_client(seaweed) as client:
                await client.put_object(
                    Bucket=bucket, Key=item.call.object_key, Body=b"x" * item.call.size
                )
            data = {"csrf": http.csrf, "reason": "case 17 review"}
            async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 409
                assert "CORRUPT" in (await resp.json())["error"]


async def test_a_damaged_audit_record_is_shown_not_skipped(local_archive, tmp_path):
    day = Path(local_archive.local_path, "_archiver/audit/2026/01/02")
    day.mkdir(parents=True)
    (day / "20260102T000000.000000Z-get-0000.json").write_bytes(b"\xff not json")
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "officer") as http:
            async with http.get("/audit", params={"result": "damaged"}) as resp:
                page = await resp.text()
    assert page.count('class="audit-row"') == 1
    assert "20260102T000000.000000Z-get-0000.json" in page


async def test_pages_in_vietnamese_and_english_keep_the_search(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "viewer") as http:
            async with http.get("/", params={"go": "1", "extension": "103"}) as resp:
                page = await resp.text()
            assert "Tìm kiếm" in page  # the default language
            assert 'href="?go=1&amp;extension=103&amp;lang=en"' in page
            async with http.get("/", params={"go": "1", "extension": "103", "lang": "en"}) as resp:
                assert "calls found" in await resp.text()
            async with http.get("/") as resp:  # the choice is kept in a cookie
                assert ">Search<" in await resp.text()


async def test_a_storage_failure_is_one_line_not_a_crash(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        audit = Path(local_archive.local_path, "_archiver/audit")
        assert not audit.exists()  # nothing audited yet
        audit.parent.mkdir(parents=True, exist_ok=True)
        audit.write_text("not a folder")  # every audit write and listing now fails
        async with signed_in(console.url, "officer") as http:
            async with http.get("/", params={"go": "1"}) as resp:
                assert resp.status == 503
                assert "no results shown" in await resp.text()


async def test_storage_gone_under_a_page_is_503_in_one_line(
    tmp_path, make_bucket, s3_settings, seaweed
):

    from tests.support.console import archived_storage
    from tests.support.faultproxy import FaultProxy

    storage = s3_settings(await make_bucket(object_lock=True))
    await archived_storage(storage, tmp_path / "builder", calls=2)
    proxy = FaultProxy(seaweed.endpoint_url, requests=False)
    async with proxy.serve() as endpoint:
        through = storage.model_copy(update={"endpoint_url": endpoint})
        async with running_console(through, tmp_path) as console:
            async with signed_in(console.url, "officer") as http:
                call_id = await first_call_id(http)
                await proxy.add_toxic("down", "reset")
                async with http.get(f"/calls/{call_id}") as resp:
                    assert resp.status == 503
                    assert resp.headers["X-Frame-Options"] == "DENY"
                    text = await resp.text()
                assert text.startswith("the storage failed: ")
                assert len(text.strip().splitlines()) == 1
