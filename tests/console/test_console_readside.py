"""The console serves only what ``verify`` proves (issue 20, item 4).

Each test alters a real archive as an insider with the storage's write
credentials would, then asks the console (a real aiohttp server on loopback)
to play, download and export the call: each is refused (409, the reason
given, audited "refused"), never 200. Last, Chromium shows the refusal.

- a recording altered and its line edited to match (sha256, size), the
  manifest object rewritten: its chain link no longer records it;
- a manifest object planted beside the chain, naming a planted recording;
- the newest batch cut from the chain (its link deleted, the head moved back),
  its manifest object left behind;
- on SeaweedFS, the recording overwritten and its line edited to the new object's
  SHA-256, ETag and checksum.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from archiver.manifest.chain import Head, Link
from archiver.settings import StorageSettings
from archiver.storage.layout import head_key, link_key
from tests.console import browser
from tests.support.console import (
    audit_records,
    first_call_id,
    running_console,
    signed_in,
)

PLANTED = b"RIFF" + b"planted audio " * 200


def _manifest(root: Path) -> Path:
    (path,) = sorted((root / "manifests").rglob("*.jsonl"))
    return path


def _rewrite(path: Path, rows: list[dict[str, Any]]) -> None:
    path.chmod(0o600)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _edit_to_match(root: Path) -> str:
    """Alter the first recording and edit its line to match; returns its sip_call_id."""
    manifest = _manifest(root)
    rows = [json.loads(raw) for raw in manifest.read_text().splitlines()]
    row = rows[0]
    recording = root / row["object_key"]
    data = bytearray(recording.read_bytes())
    data[len(data) // 2] ^= 0xFF
    recording.chmod(0o600)
    recording.write_bytes(bytes(data))
    row["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    _rewrite(manifest, rows)
    return str(row["sip_call_id"])


def _plant_beside_the_chain(root: Path) -> str:
    """A manifest object no link records, named like a writer's, and its recording."""
    template = json.loads(_manifest(root).read_text().splitlines()[0])
    key = "recordings/2021/02/17/planted-call.wav"
    (root / key).write_bytes(PLANTED)
    line = {
        **template,
        "sip_call_id": "planted-call",
        "cdr_id": "planted-cdr",
        "object_key": key,
        "sha256": hashlib.sha256(PLANTED).hexdigest(),
        "size": len(PLANTED),
    }
    planted = root / "manifests/date=2021-02-17/000000000077-wplanted0000001.jsonl"
    planted.write_text(json.dumps(line) + "\n")
    return "planted-call"


def _cut_newest_link(root: Path, *, keep_link: bool) -> str:
    """Move the head back over the newest link (deleted unless ``keep_link``); the manifest
    object stays."""
    (chain,) = (root / "_archiver/chain").iterdir()
    writer = chain.name
    head = Head.from_bytes((root / head_key(writer)).read_bytes())
    newest = Link.from_bytes((root / link_key(writer, head.seq)).read_bytes())
    assert newest.prev_seq is not None, "the archive needs two links"
    previous = (root / link_key(writer, newest.prev_seq)).read_bytes()
    if not keep_link:
        (root / link_key(writer, head.seq)).unlink()
    (root / head_key(writer)).unlink()
    (root / head_key(writer)).write_bytes(Head.of(previous).to_bytes())
    rows = (root / newest.manifest_key).read_text().splitlines()
    return str(json.loads(rows[0])["sip_call_id"])


async def _refused_everywhere(storage: StorageSettings, workdir: Path, sip_call_id: str) -> str:
    async with running_console(storage, workdir) as console:
        async with signed_in(console.url, "exporter") as http:
            call_id = await first_call_id(http, id=sip_call_id)
            data = {"csrf": http.csrf, "reason": "audit 20"}
            async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 409, await resp.text()
                error = (await resp.json())["error"]
            async with http.post(f"/calls/{call_id}/download", data=data) as resp:
                assert resp.status == 409
                assert "OUT-OF-CHAIN" in await resp.text()
            async with http.post("/export", data={**data, "ids": str(call_id)}) as resp:
                assert resp.status == 409
                assert "OUT-OF-CHAIN" in await resp.text()
            async with http.get(f"/calls/{call_id}") as resp:
                assert "OUT-OF-CHAIN" in await resp.text()
        records = await audit_records(console.store)
        refused = sorted(r["action"] for r in records if r["result"] == "refused")
        assert refused == ["download", "export", "play"]
        assert not [r for r in records if r["action"] in ("play", "download", "export")
                    and r["result"] == "ok"]  # fmt: skip
    assert "OUT-OF-CHAIN" in error
    return error


async def test_a_line_edited_to_match_a_tampered_recording_is_refused(local_archive, tmp_path):
    sip = _edit_to_match(Path(local_archive.local_path))
    error = await _refused_everywhere(local_archive, tmp_path, sip)
    assert "altered" in error


async def test_a_manifest_object_outside_the_chain_is_refused(local_archive, tmp_path):
    sip = _plant_beside_the_chain(Path(local_archive.local_path))
    error = await _refused_everywhere(local_archive, tmp_path, sip)
    assert "000000000077-wplanted0000001.jsonl" in error


@pytest.mark.parametrize("keep_link", [False, True])
async def test_a_batch_cut_from_the_chain_is_refused(two_batch_archive, tmp_path, keep_link):
    sip = _cut_newest_link(Path(two_batch_archive.local_path), keep_link=keep_link)
    error = await _refused_everywhere(two_batch_archive, tmp_path, sip)
    assert "past its chain's head" in error if keep_link else "batch was cut" in error


async def test_the_untouched_calls_still_play(local_archive, tmp_path):
    _plant_beside_the_chain(Path(local_archive.local_path))
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "listener") as http:
            async with http.get("/", params={"go": "1"}) as resp:
                html = await resp.text()
            ids = [int(part.split('"')[0]) for part in html.split('data-id="')[1:]]
            played = 0
            for call_id in ids:
                item = await console.console.calls.get(call_id)
                if item.call.sip_call_id == "planted-call":
                    continue
                data = {"csrf": http.csrf, "reason": "spot check"}
                async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                    assert resp.status == 200, await resp.text()
                played += 1
            assert played == 6


@pytest.mark.skipif(not browser.available(), reason="needs chromium and chromedriver")
async def test_the_refusal_shows_in_the_browser(local_archive, tmp_path):
    sip = _plant_beside_the_chain(Path(local_archive.local_path))
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http, id=sip)
        with browser.chromium(tmp_path / "profile", tmp_path / "downloads") as driver:
            import asyncio

            def story() -> str:
                from tests.console.test_console_browser import _reason, _sign_in, _wait

                _sign_in(driver, console.url, "listener")
                driver.get(console.url + f"/calls/{call_id}")
                _reason(driver, "play-form", "complaint 20")
                driver.find_element(By.ID, "play-button").click()
                _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#integrity .bad"))
                return str(driver.find_element(By.ID, "integrity").text)

            shown = await asyncio.to_thread(story)
    assert "OUT-OF-CHAIN" in shown
    assert "no link records it" in shown or "link" in shown
    plays = [r for r in await audit_records(console.store) if r["action"] == "play"]
    assert [r["result"] for r in plays] == ["refused"]


async def test_a_consistent_line_edit_on_s3_is_refused(tmp_path, make_bucket, s3_settings, seaweed):
    """On SeaweedFS: the recording overwritten and its line edited to the new object's
    SHA-256, size, ETag and checksum (all a verify of the line alone would check)."""
    import base64

    from tests.support.console import archived_storage
    from tests.support.seaweed import admin_client

    bucket = await make_bucket()
    storage = s3_settings(bucket)
    await archived_storage(storage, tmp_path / "builder", calls=2)
    prefix = storage.bucket_and_prefix[1].rstrip("/") + "/"
    async with admin_client(seaweed) as client:
        listed = await client.list_objects_v2(Bucket=bucket, Prefix=prefix + "manifests/")
        (key,) = [o["Key"] for o in listed["Contents"]]
        got = await client.get_object(Bucket=bucket, Key=key)
        async with got["Body"] as body:
            rows = [json.loads(raw) for raw in (await body.read()).splitlines()]
        row = rows[0]
        forged = b"RIFF" + b"\x01" * (row["size"] - 4)
        put = await client.put_object(
            Bucket=bucket, Key=row["object_key"], Body=forged, ChecksumAlgorithm="SHA256"
        )
        row["sha256"] = hashlib.sha256(forged).hexdigest()
        row["etag"] = put["ETag"].strip('"')
        row["checksum_sha256"] = base64.b64encode(hashlib.sha256(forged).digest()).decode()
        edited = "".join(json.dumps(r) + "\n" for r in rows).encode()
        await client.put_object(Bucket=bucket, Key=key, Body=edited)
    error = await _refused_everywhere(storage, tmp_path, str(row["sip_call_id"]))
    assert "altered" in error
