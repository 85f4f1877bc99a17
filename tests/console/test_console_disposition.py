"""The console's disposition screen over HTTP, the console a real aiohttp server on loopback
(issue 27): the due list is ``dispose --dry-run``'s; a request by one officer, approved by
another, disposes of the calls with tombstones naming the approver and verify then counts
them DISPOSED; the two-person rule refuses self-approval; non-officers and requests without
the CSRF token are refused; requests outlive a console restart; all of it audited.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver.console.auth import Account, Role, hash_password, write_accounts
from archiver.manifest.retention import load_schedule
from archiver.settings import StorageSettings
from archiver.storage import open_store
from tests.support.cli import cli_env, run_cli, s3_storage_env
from tests.support.console import (
    PASSWORD,
    USERS,
    archived_storage,
    audit_records,
    running_console,
    signed_in,
)
from tests.support.seaweed import admin_client

RULES = """
[[rule]]
name = "outbound-century"
days = 36500
direction = "outbound"

[[rule]]
name = "one-year"
days = 365
"""
CODES = {"1": "inbound", "2": "outbound", "3": "local"}
CODES_ENV = "1=inbound,2=outbound,3=local"
AS_OF = "2026-01-01"


def rows(html: str, kind: str) -> set[str]:
    """The object keys of a page's table rows of ``kind`` (due-row, kept-row, covered-row)."""
    return set(re.findall(rf'<tr class="{kind}[^"]*" data-key="([^"]+)"', html))


def dry_run_keys(out: str, verb: str) -> set[str]:
    return {line.split()[1] for line in out.splitlines() if line.startswith(f"{verb}: ")}


def write_officers(path: Path) -> None:
    """One account per role, and a second officer."""
    hashed = hash_password(PASSWORD)
    accounts = {name: Account(name, role, hashed) for name, role in USERS.items()}
    accounts["officer2"] = Account("officer2", Role.OFFICER, hashed)
    write_accounts(path, accounts)


async def test_the_due_list_is_dispose_dry_runs_with_holds_and_locks(
    tmp_path, make_bucket, s3_settings, s3_env
):
    storage = s3_settings(await make_bucket(object_lock=True))
    await archived_storage(storage, tmp_path / "builder", calls=6)
    (tmp_path / "rules.toml").write_text(RULES)
    env = cli_env(
        s3_storage_env(storage, s3_env)
        | {
            "ARCHIVER_RETENTION__RULES_FILE": str(tmp_path / "rules.toml"),
            "ARCHIVER_SOURCE__TIMEZONE": "Asia/Ho_Chi_Minh",
            "ARCHIVER_SOURCE__DIRECTION_CODES": CODES_ENV,
        }
    )
    before = await run_cli("dispose", "--dry-run", "--as-of", AS_OF, env=env, cwd=tmp_path)
    assert before.code == 0, before.err
    due = sorted(dry_run_keys(before.out, "due"))
    assert len(due) >= 2, before.out
    bucket, prefix = storage.bucket_and_prefix
    held, locked = due[0], due[1]
    async with admin_client(s3_env) as admin:
        await admin.put_object_legal_hold(Bucket=bucket, Key=held, LegalHold={"Status": "ON"})
        until = datetime.now(UTC) + timedelta(days=2)
        await admin.put_object_retention(
            Bucket=bucket, Key=locked, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}
        )
    try:
        listed = await run_cli("dispose", "--dry-run", "--as-of", AS_OF, env=env, cwd=tmp_path)
        assert listed.code == 0, listed.err
        assert dry_run_keys(listed.out, "kept") == {held, locked}
        schedule = load_schedule(tmp_path / "rules.toml", 0, CODES)
        workdir = tmp_path / "console"
        workdir.mkdir()
        async with (
            running_console(storage, workdir, schedule=schedule) as console,
            signed_in(console.url, "officer") as http,
        ):
            async with http.get("/disposition", params={"go": "1", "as_of": AS_OF}) as resp:
                assert resp.status == 200, await resp.text()
                html = await resp.text()
    finally:
        async with admin_client(s3_env) as admin:
            await admin.put_object_legal_hold(Bucket=bucket, Key=held, LegalHold={"Status": "OFF"})
    assert rows(html, "due-row") == dry_run_keys(listed.out, "due")
    assert rows(html, "kept-row") == {held, locked}
    assert "legal hold" in html
    assert "Object Lock GOVERNANCE until" in html
    assert "one-year" in html
    assert prefix in held


async def _request(http, as_of: str = "") -> tuple[int, str]:
    data = {"csrf": http.csrf, "as_of": as_of}
    async with http.post("/disposition", data=data, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", "") or await resp.text()


async def _approve(http, request_id: str, csrf: str | None) -> tuple[int, str]:
    data = {} if csrf is None else {"csrf": csrf}
    url = f"/disposition/{request_id}/approve"
    async with http.post(url, data=data, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def test_a_request_approved_by_another_officer_disposes_with_proof(
    local_archive: StorageSettings, tmp_path
):
    (tmp_path / "rules.toml").write_text("default_days = 30\n")
    schedule = load_schedule(tmp_path / "rules.toml", 0)
    workdir = tmp_path / "console"
    workdir.mkdir()
    write_officers(workdir / "users")
    async with running_console(local_archive, workdir, schedule=schedule) as console:
        # Not an officer: neither the screen nor a request nor an approval.
        async with signed_in(console.url, "exporter") as http:
            async with http.get("/disposition", params={"go": "1"}) as resp:
                assert resp.status == 403
            status, _ = await _request(http)
            assert status == 403
        async with signed_in(console.url, "officer") as http:
            # No CSRF token: refused, nothing requested.
            async with http.post("/disposition", data={"as_of": ""}) as resp:
                assert resp.status == 403
                assert "CSRF" in await resp.text()
            async with http.get("/disposition") as resp:
                assert 'id="no-requests"' in await resp.text()
            bad, text = await _request(http, "2999-01-01")
            assert bad == 400
            assert "future" in text
            for as_of in ("yesterday", "2026-13-45", "x" * 100):
                async with http.get("/disposition", params={"go": "1", "as_of": as_of}) as resp:
                    assert resp.status == 400, as_of
                    assert (await resp.text()).startswith("as_of: ")
            for path in ("/disposition/D-20260101-00000000", "/disposition/D-2026%2F..%2Fx"):
                async with http.get(path, allow_redirects=False) as resp:
                    assert resp.status == 404, path
            status, location = await _request(http)
            assert status == 303, location
            request_id = location.rsplit("/", 1)[1]
            async with http.get(location) as resp:
                page = await resp.text()
            assert len(rows(page, "covered-row")) == 6
            assert 'id="own-request"' in page
            assert 'id="approve-button"' not in page
            # The two-person rule: the requester's own approval is refused.
            status, text = await _approve(http, request_id, http.csrf)
            assert status == 403
            assert "two-person rule" in text
        async with signed_in(console.url, "exporter") as http:
            status, _ = await _approve(http, request_id, http.csrf)
            assert status == 403
    assert len(list(Path(local_archive.url).rglob("recordings/**/*.*"))) == 6

    # A restart: the request is still there, awaiting approval.
    async with running_console(local_archive, workdir, schedule=schedule) as console:
        async with signed_in(console.url, "officer2") as http:
            async with http.get("/disposition") as resp:
                assert request_id in await resp.text()
            status, _ = await _approve(http, request_id, None)
            assert status == 403  # no CSRF token
            status, text = await _approve(http, request_id, http.csrf)
            assert status == 303, text
            async with http.get(f"/disposition/{request_id}") as resp:
                page = await resp.text()
            assert 'data-status="done"' in page
            assert '<span id="disposed-count">6</span>' in page
            assert '<span id="approved-by">officer2</span>' in page
            again, text = await _approve(http, request_id, http.csrf)
            assert again == 409
            assert "approved already" in text
        records = await audit_records(console.store)
        async with open_store(local_archive) as store:
            stones = [o.key async for o in store.list("_archiver/tombstones/")]
            body = b"".join([b"".join([c async for c in store.read(k)]) for k in stones])
    assert not list(Path(local_archive.url).rglob("recordings/**/*.*"))
    assert body.count(b'"approved_by":"officer2"') == 6
    verified = await run_cli(
        "verify", env=cli_env({"ARCHIVER_STORAGE__URL": local_archive.url}), cwd=tmp_path
    )
    assert verified.code == 0, verified.out + verified.err
    assert "DISPOSED 6 recording(s)" in verified.out

    def seen(action: str) -> list[tuple[str, str]]:
        return [(r["operator"], r["result"]) for r in records if r["action"] == action]

    assert seen("disposition-request") == [
        ("exporter", "refused"),
        ("officer", "ok"),
    ]
    assert seen("disposition-approve") == [
        ("officer", "refused"),
        ("exporter", "refused"),
        ("officer2", "ok"),
        ("officer2", "refused"),
    ]
    [certificate] = [r for r in records if r["action"] == "dispose"]
    assert certificate["operator"] == "officer2"
    assert certificate["result"] == "ok"
    assert certificate["details"]["approved_by"] == "officer2"
    assert certificate["details"]["requested_by"] == "officer"
    assert certificate["details"]["request"] == request_id
    assert len(certificate["details"]["disposed"]) == 6
    assert ("exporter", "refused") in seen("dispose-dry-run")


async def test_without_the_two_person_rule_the_requester_may_approve_and_one_approval_runs(
    local_archive: StorageSettings, tmp_path
):
    """Rule off: the requester may approve. A survey while another runs: 429. A list changed
    after the request: refused. Two officers approving at once: one run, the other refused
    (the approval is a conditional write), one certificate, one tombstone each."""
    (tmp_path / "rules.toml").write_text("default_days = 30\n")
    schedule = load_schedule(tmp_path / "rules.toml", 0)
    write_officers(tmp_path / "users")
    async with (
        running_console(
            local_archive, tmp_path, schedule=schedule, disposal_two_person=False
        ) as console,
        signed_in(console.url, "officer") as http,
        signed_in(console.url, "officer2") as other,
    ):
        # One survey or disposition at a time: another is told to come back.
        async with console.console.disposal_busy:
            async with http.get("/disposition", params={"go": "1"}) as resp:
                assert resp.status == 429
                assert resp.headers["Retry-After"] == "5"
        status, location = await _request(http)
        assert status == 303, location
        request_id = location.rsplit("/", 1)[1]
        # The list a request covers, changed in the storage after it was made: refused.
        listed = Path(local_archive.url) / "_archiver/dispositions" / request_id / "calls.json"
        original = listed.read_bytes()
        listed.write_bytes(original.replace(b'"calls": [{', b'"calls": [{"x": 1}, {', 1))
        status, text = await _approve(other, request_id, other.csrf)
        assert status == 409, text
        assert "not the one it was made with" in text
        listed.write_bytes(original)
        answers = await asyncio.gather(
            _approve(http, request_id, http.csrf), _approve(other, request_id, other.csrf)
        )
        assert sorted(code for code, _ in answers) == [303, 409], answers
        async with http.get(location) as resp:
            assert '<span id="disposed-count">6</span>' in await resp.text()
        records = await audit_records(console.store)
        async with open_store(local_archive) as store:
            stones = [o.key async for o in store.list("_archiver/tombstones/")]
            body = b"".join([b"".join([c async for c in store.read(k)]) for k in stones])
    assert len([r for r in records if r["action"] == "dispose"]) == 1
    refusals = [r for r in records if r["action"] == "disposition-approve"]
    assert [r["result"] for r in refusals].count("refused") == 2  # the tampered list, the race
    assert body.count(b'"record":"tombstone"') == 6
