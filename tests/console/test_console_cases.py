"""Cases in the console over HTTP: open, add from a search, who sees what, work under a case,
and the evidence package the case exports (checked by its own verifier)."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import zipfile

import aiohttp

from tests.support.console import (
    audit_records,
    export_records,
    first_call_id,
    running_console,
    signed_in,
)


async def open_case(http, reference: str = "KN-2026-118", reason: str = "customer complaint"):
    data = {"csrf": http.csrf, "reference": reference, "reason": reason}
    async with http.post("/cases", data=data, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        return resp.headers["Location"].rsplit("/", 1)[1]


async def test_a_case_from_opening_to_its_evidence_package(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "exporter") as http:
            case_id = await open_case(http)
            assert re.fullmatch(r"C-\d{8}-[0-9a-f]{8}", case_id)
            async with http.get("/", params={"go": "1"}) as resp:
                page = await resp.text()
            assert f'<option value="{case_id}">' in page  # offered on the results
            ids = re.findall(r'<tr data-id="(\d+)">', page)[:2]
            form = aiohttp.FormData([("csrf", http.csrf), ("to_case", case_id)])
            for ident in ids:
                form.add_field("ids", ident)
            async with http.post("/cases/add", data=form, allow_redirects=False) as resp:
                assert resp.status == 303
            async with http.get(f"/cases/{case_id}") as resp:
                case_page = await resp.text()
            assert case_page.count('class="case-call"') == 2
            # Work under the case: its reference and reason are the play's reason.
            call_id = int(ids[0])
            data = {"csrf": http.csrf, "case": case_id}
            async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 200, await resp.text()
            async with http.post(f"/cases/{case_id}/package", data={"csrf": http.csrf}) as resp:
                assert resp.status == 200
                blob = await resp.read()
        folder = tmp_path / "package"
        zipfile.ZipFile(io.BytesIO(blob)).extractall(folder)
        assert len(list(folder.glob("recordings/*"))) == 2
        checker = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-I", "verify_package.py"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checker.returncode == 0, checker.stdout + checker.stderr
        records = await audit_records(console.store)
        actions = [r["action"] for r in records]
        assert {"case-open", "case-add"} <= set(actions)
        play = next(r for r in records if r["action"] == "play")
        assert case_id in play["details"]["reason"]
        assert "KN-2026-118" in play["details"]["reason"]
        exports = await export_records(console.store, 2, "case-export")
        assert [r["result"] for r in exports] == ["started", "ok"]


async def test_exporters_see_their_own_cases_officers_see_all_viewers_none(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "exporter") as http:
            mine = await open_case(http, "KN-1", "customer complaint")
            for bad in ({"reference": "", "reason": "x"}, {"reference": "KN-2", "reason": "."}):
                async with http.post("/cases", data={"csrf": http.csrf, **bad}) as resp:
                    assert resp.status == 400, bad
        async with signed_in(console.url, "officer") as http:
            theirs = await open_case(http, "INSP-7", "yearly inspection")
            async with http.get("/cases") as resp:
                page = await resp.text()
            assert mine in page
            assert theirs in page
            async with http.get(f"/cases/{mine}") as resp:
                assert resp.status == 200
        async with signed_in(console.url, "exporter") as http:
            async with http.get("/cases") as resp:
                page = await resp.text()
            assert mine in page
            assert theirs not in page
            async with http.get(f"/cases/{theirs}", allow_redirects=False) as resp:
                assert resp.status == 404
            call_id = await first_call_id(http)
            data = {"csrf": http.csrf, "case": theirs, "reason": "complaint 9"}
            async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 404  # not a case this user may work under
            form = aiohttp.FormData(
                [("csrf", http.csrf), ("to_case", theirs), ("ids", str(call_id))]
            )
            async with http.post("/cases/add", data=form) as resp:
                assert resp.status == 404
        async with signed_in(console.url, "viewer") as http:
            async with http.get("/cases", allow_redirects=False) as resp:
                assert resp.status == 403
