"""Download and export over HTTP: attachments, the ZIP's contents, bad selections, memory."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

import aiohttp

from archiver.manifest.seal import seal
from archiver.storage import open_store
from tests.support.console import (
    audit_records,
    first_call_id,
    manifest_calls,
    running_console,
    signed_in,
)


async def test_download_and_export_zip(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        calls = {c.cdr_id: c for c in await manifest_calls(console.store)}
        async with signed_in(console.url, "exporter") as http:
            async with http.get("/", params={"go": "1"}) as resp:
                html = await resp.text()
            ids = [int(part.split('"')[0]) for part in html.split('data-id="')[1:]]
            assert len(ids) == len(calls)
            data = {"csrf": http.csrf, "reason": "court order 12"}
            async with http.post(f"/calls/{ids[0]}/download", data=data) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Disposition"].startswith("attachment;")
                one = await resp.read()
            item = await console.console.calls.get(ids[0])
            assert hashlib.sha256(one).hexdigest() == item.call.sha256
            form = aiohttp.FormData([*data.items(), *(("ids", str(i)) for i in ids)])
            async with http.post("/export", data=form) as resp:
                assert resp.status == 200
                assert resp.content_type == "application/zip"
                blob = await resp.read()
        archive = zipfile.ZipFile(io.BytesIO(blob))
        assert archive.testzip() is None
        names = archive.namelist()
        assert {"manifest.csv", "manifest.json", "SHA256SUMS"} <= set(names)
        sums = dict(
            reversed(line.split("  ", 1))
            for line in archive.read("SHA256SUMS").decode().splitlines()
        )
        assert set(sums) == set(names) - {"SHA256SUMS"}
        for name, digest in sums.items():
            assert hashlib.sha256(archive.read(name)).hexdigest() == digest
        rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
        assert {r["cdr_id"] for r in rows} == set(calls)
        lines = json.loads(archive.read("manifest.json"))
        assert {line["sha256"] for line in lines} == {c.sha256 for c in calls.values()}
        recordings = [n for n in names if n.startswith("recordings/")]
        assert sorted(sums[n] for n in recordings) == sorted(c.sha256 for c in calls.values())
        exports = [r for r in await audit_records(console.store) if r["action"] == "export"]
        assert exports[0]["details"]["reason"] == "court order 12"
        assert len(exports[0]["target"]["calls"]) == len(calls)


async def test_export_refuses_bad_and_oversized_selections(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path, export_limit=2) as console:
        async with signed_in(console.url, "exporter") as http:
            base = {"csrf": http.csrf, "reason": "case 17 review"}
            for ids, status in (
                (["1", "2", "3"], 413),
                (["../1"], 400),
                ([], 400),
                (["999999"], 404),
            ):
                form = aiohttp.FormData([*base.items(), *(("ids", i) for i in ids)])
                async with http.post("/export", data=form) as resp:
                    assert resp.status == status, ids
        assert not [r for r in await audit_records(console.store) if r["action"] == "export"]


async def test_export_streams_in_bounded_memory(local_archive, tmp_path):
    import tracemalloc

    root = Path(local_archive.local_path)
    size = 48 * 1024 * 1024
    big = root / "recordings/big.wav"
    with big.open("wb") as out:  # written a MiB at a time: the test holds no copy either
        block = bytes(range(256)) * 4096
        digest = hashlib.sha256()
        for _ in range(size // len(block)):
            out.write(block)
            digest.update(block)
    first = sorted((root / "manifests").rglob("*.jsonl"))[0]
    line = json.loads(first.read_text().splitlines()[0])
    line |= {"cdr_id": "big-1", "sip_call_id": "big-1", "object_key": "recordings/big.wav"}
    line |= {"size": size, "sha256": digest.hexdigest()}
    for proof in ("etag", "version_id", "checksum_sha256", "checksum_type"):
        line.pop(proof, None)  # a legacy line (a local file keeps no proof anyway)
    (root / "manifests/date=2021-02-18").mkdir()
    (root / "manifests/date=2021-02-18/big.jsonl").write_text(json.dumps(line) + "\n")
    # Chained as archiver seal chains a legacy object: the console serves no line
    # outside the chain.
    async with open_store(local_archive) as store:
        assert (await seal(store)).sealed == 1
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "exporter") as http:
            call_id = await first_call_id(http, id="big-1")
            form = {"csrf": http.csrf, "reason": "big one", "ids": str(call_id)}
            received = hashlib.sha256()
            zipped = tmp_path / "export.zip"
            tracemalloc.start()
            try:
                async with http.post("/export", data=form) as resp:
                    assert resp.status == 200
                    with zipped.open("wb") as out:
                        async for chunk in resp.content.iter_chunked(256 * 1024):
                            received.update(chunk)
                            out.write(chunk)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 48 MiB recording"
    with zipfile.ZipFile(zipped) as archive:
        (name,) = [n for n in archive.namelist() if n.startswith("recordings/")]
        assert archive.getinfo(name).file_size == size
        check = hashlib.sha256()
        with archive.open(name) as entry:
            while chunk := entry.read(1024 * 1024):
                check.update(chunk)
        assert check.hexdigest() == digest.hexdigest()
