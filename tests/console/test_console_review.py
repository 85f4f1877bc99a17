"""The review workflow over HTTP: sort, pages, filters, saved searches, export of the whole
result, one reason per call visit, the audit page paged with readable targets, and errors
in the reader's language."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp

from archiver.console.saved import MAX_SAVED, clean_query
from archiver.retrieval.audit import AuditTrail
from tests.support.console import (
    TZ_NAME,
    audit_records,
    export_records,
    first_call_id,
    manifest_calls,
    running_console,
    signed_in,
)

_ROW = re.compile(r'<tr data-id="(\d+)">')


async def ids_of(http: aiohttp.ClientSession, **query: str) -> list[int]:
    async with http.get("/", params={"go": "1", **query}) as resp:
        assert resp.status == 200, await resp.text()
        return [int(i) for i in _ROW.findall(await resp.text())]


async def test_results_sort_by_time_and_talk_and_page_with_a_chosen_size(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        index = console.console.calls
        async with signed_in(console.url, "viewer") as http:
            newest = await ids_of(http, size="100")
            assert len(newest) == 6
            started = [(await index.get(i)).call.call_started_at for i in newest]
            assert started == sorted(started, reverse=True)
            assert await ids_of(http, sort="oldest", size="100") == newest[::-1]
            longest = await ids_of(http, sort="longest", size="100")
            talks = [(await index.get(i)).call.fields["billsec"] for i in longest]
            assert talks == sorted(talks, reverse=True)
            shortest = await ids_of(http, sort="shortest", size="100")
            assert [(await index.get(i)).call.fields["billsec"] for i in shortest] == sorted(talks)
            async with http.get("/", params={"go": "1", "size": "10"}) as resp:
                assert "1 / 1" in await resp.text()
            pages = [await ids_of(http, size="10", page=str(n)) for n in (1, 2)]
            assert pages[0] == newest
            assert pages[1] == []
            for bad in ({"size": "7"}, {"size": "x"}, {"sort": "random"}, {"page": "0"}):
                async with http.get("/", params={"go": "1", **bad}) as resp:
                    assert resp.status == 400, bad


async def test_filters_for_time_of_day_talk_outcome_customer_and_integrity(local_archive, tmp_path):
    tz = ZoneInfo(TZ_NAME)
    async with running_console(local_archive, tmp_path) as console:
        lines = await manifest_calls(console.store)
        async with signed_in(console.url, "viewer") as http:
            every = await ids_of(http, size="100")
            by_sip = {}
            for ident in every:
                by_sip[(await console.console.calls.get(ident)).call.sip_call_id] = ident

            def expect(keep) -> list[int]:
                return sorted(by_sip[c.sip_call_id] for c in lines if keep(c))

            talk = sorted(c.fields["billsec"] for c in lines)[3]
            found = sorted(await ids_of(http, size="100", min_seconds=str(talk)))
            assert found == expect(lambda c: c.fields["billsec"] >= talk)
            found = sorted(await ids_of(http, size="100", max_seconds=str(talk)))
            assert found == expect(lambda c: c.fields["billsec"] <= talk)
            hours = sorted(c.call_started_at.astimezone(tz).hour for c in lines)
            start, end = hours[1], hours[-2] + 1
            found = sorted(
                await ids_of(http, size="100", time_from=f"{start:02d}:00", time_to=f"{end:02d}:00")
            )
            assert found == expect(lambda c: start <= c.call_started_at.astimezone(tz).hour < end)
            outcome = lines[0].fields["status"]
            found = sorted(await ids_of(http, size="100", outcome=outcome.lower()))
            # The outcome matches whatever its case (providers write ANSWERED and answered).
            assert found == expect(lambda c: c.fields["status"].casefold() == outcome.casefold())
            customer = next(c.fields["customer_id"] for c in lines if c.fields.get("customer_id"))
            found = sorted(await ids_of(http, size="100", customer=customer))
            assert found == expect(lambda c: c.fields.get("customer_id") == customer)
            assert await ids_of(http, integrity="damaged") == []
            assert sorted(await ids_of(http, size="100", integrity="unchecked")) == sorted(every)
            await console.console.calls.record_check(every[0], "altered since archived")
            await console.console.calls.record_check(every[1], None)
            assert await ids_of(http, integrity="damaged") == [every[0]]
            assert await ids_of(http, integrity="intact") == [every[1]]
            # The legal hold as the audit trail last records it (console or `archiver hold`).
            held = await console.console.calls.get(every[2])
            trail = AuditTrail(console.store, "officer")
            target = {"provider": held.call.provider, "cdr_id": held.call.cdr_id}
            await trail.record("hold-on", target, "ok", {})
            await trail.record("hold-off", target, "failed", {})  # a failure changes nothing
            await console.console.audit_log.refresh(console.store)
            assert await ids_of(http, hold="on") == [every[2]]
            assert every[2] not in await ids_of(http, size="100", hold="off")
            await trail.record("hold-off", target, "ok", {})
            await console.console.audit_log.refresh(console.store)
            assert await ids_of(http, hold="on") == []
            for bad in (
                {"time_from": "25:00"},
                {"min_seconds": "-1"},
                {"integrity": "fine"},
                {"hold": "maybe"},
            ):
                async with http.get("/", params={"go": "1", **bad}) as resp:
                    assert resp.status == 400, bad
        searches = [r for r in await audit_records(console.store) if r["action"] == "search"]
        assert any("customer" in r["target"]["query"] for r in searches)  # filters are audited


async def test_saved_searches_are_the_users_own_and_bounded(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "viewer") as http:
            form = {"csrf": http.csrf, "name": "long calls", "query": "go=1&min_seconds=30&x=<b>"}
            async with http.post("/searches", data=form, allow_redirects=False) as resp:
                assert resp.status == 303
                assert resp.headers["Location"] == "/?go=1&min_seconds=30"  # junk dropped
            async with http.get("/") as resp:
                page = await resp.text()
            assert 'href="/?go=1&amp;min_seconds=30"' in page
            async with http.post("/searches", data={**form, "name": "   "}) as resp:
                assert resp.status == 400
        async with signed_in(console.url, "listener") as other:
            async with other.get("/") as resp:
                assert "long calls" not in await resp.text()  # another user's list
        async with signed_in(console.url, "viewer") as http:
            for number in range(MAX_SAVED - 1):
                data = {"csrf": http.csrf, "name": f"s{number}", "query": "go=1"}
                async with http.post("/searches", data=data, allow_redirects=False) as resp:
                    assert resp.status == 303
            data = {"csrf": http.csrf, "name": "one too many", "query": "go=1"}
            async with http.post("/searches", data=data) as resp:
                assert resp.status == 400
            data = {"csrf": http.csrf, "name": "long calls"}
            async with http.post("/searches/delete", data=data, allow_redirects=False) as resp:
                assert resp.status == 303
            async with http.get("/") as resp:
                assert "long calls" not in await resp.text()
    assert clean_query("phone=0901&sort=oldest&evil=1") == "go=1&phone=0901&sort=oldest"


async def test_export_all_results_with_one_reason_or_refuse_to_truncate(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "exporter") as http:
            data = {"csrf": http.csrf, "reason": "inspection 2026-12", "all": "1"}
            async with http.post("/export?go=1&sort=oldest", data=data) as resp:
                assert resp.status == 200
                blob = await resp.read()
        names = zipfile.ZipFile(io.BytesIO(blob)).namelist()
        assert len([n for n in names if n.startswith("recordings/")]) == 6
        exports = await export_records(console.store, 2)
        assert [r["result"] for r in exports] == ["started", "ok"]
        assert len(exports[-1]["target"]["calls"]) == 6
    async with running_console(local_archive, tmp_path, export_limit=4) as console:
        async with signed_in(console.url, "exporter") as http:
            data = {"csrf": http.csrf, "reason": "inspection 2026-12", "all": "1"}
            async with http.post("/export?go=1", data=data) as resp:
                assert resp.status == 413
                assert "narrow it" in await resp.text()
            async with http.get("/", params={"go": "1"}) as resp:
                assert 'id="export-all"' not in await resp.text()  # not offered past the limit


async def test_one_reason_per_call_visit_and_no_punctuation_for_a_reason(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "exporter") as http:
            call_id = await first_call_id(http)
            for junk in (".", "   ", "..,;", "ab"):
                data = {"csrf": http.csrf, "reason": junk}
                async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                    assert resp.status == 400, junk
            data = {"csrf": http.csrf, "reason": "complaint 7781"}
            async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 200
            async with http.get(f"/calls/{call_id}") as resp:
                assert 'value="complaint 7781"' in await resp.text()  # the page remembers it
            async with http.post(f"/calls/{call_id}/download", data={"csrf": http.csrf}) as resp:
                assert resp.status == 200  # no second reason asked
                await resp.read()
            other = await first_call_id(http, sort="oldest")
            assert other != call_id
            async with http.post(f"/calls/{other}/play", data={"csrf": http.csrf}) as resp:
                assert resp.status == 400  # another call is another visit
        records = [
            r for r in await audit_records(console.store) if r["action"] in ("play", "download")
        ]
        assert [(r["action"], r["details"]["reason"]) for r in records if r["result"] == "ok"] == [
            ("play", "complaint 7781"),
            ("download", "complaint 7781"),
        ]


async def test_the_audit_page_is_paged_and_names_calls_readably(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http)
            data = {"csrf": http.csrf, "reason": "complaint 42"}
            async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 200
            for _ in range(104):
                async with http.get("/", params={"go": "1", "phone": "0901"}) as resp:
                    assert resp.status == 200
        async with signed_in(console.url, "officer") as http:
            async with http.get("/audit") as resp:
                first = await resp.text()
            assert first.count('class="audit-row"') == 100
            assert 'id="audit-next"' in first
            async with http.get("/audit", params={"page": "2"}) as resp:
                second = await resp.text()
            assert 0 < second.count('class="audit-row"') < 100
            assert 'id="audit-next"' not in second
            async with http.get("/audit", params={"action": "play"}) as resp:
                plays = await resp.text()
            assert f'href="/calls/{call_id}" class="target-link"' in plays
            assert "{&#34;" not in plays  # no raw JSON
            assert '{"' not in plays
            assert "phone=0901" in first  # a search's target in words


async def test_errors_are_pages_in_the_readers_language(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "viewer") as http:
            html = {"Accept": "text/html,application/xhtml+xml"}
            async with http.get("/calls/999999", params={"lang": "vi"}, headers=html) as resp:
                assert resp.status == 404
                page = await resp.text()
                assert resp.headers["X-Frame-Options"] == "DENY"
            assert '<html lang="vi">' in page
            assert "Không tìm thấy." in page
            assert "<h1>" in page
            async with http.get("/calls/999999", params={"lang": "en"}, headers=html) as resp:
                assert "Not found." in await resp.text()
            async with http.get("/audit", headers=html) as resp:
                assert resp.status == 403
                assert (
                    "This is not allowed." in await resp.text() or "Không được" in await resp.text()
                )
            async with http.get("/calls/999999") as resp:  # a script, not a browser: plain text
                assert resp.status == 404
                assert resp.content_type == "text/plain"
    assert datetime.now(ZoneInfo(TZ_NAME)).utcoffset() is not None
