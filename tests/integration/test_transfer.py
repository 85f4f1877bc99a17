"""The transfer of one recording against real servers: key safety, the host guard, multipart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from archiver.failures import FailureKind
from archiver.models import CallRecord, Provider
from archiver.pipeline.hosts import GuardedResolver, HostPolicy
from archiver.pipeline.transfer import TransferConfig, Transferrer, Verdict
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from tests.support.seaweed import admin_client
from tests.support.web import serve

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
MiB = 1024 * 1024


@asynccontextmanager
async def transferrer(
    store: ObjectStore, api_url: str, *, buffer_bound: int = 8 * MiB, part_size: int = 5 * MiB
) -> AsyncIterator[Transferrer]:
    policy = HostPolicy([], api_url)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Transferrer(
            session,
            store,
            policy,
            TransferConfig(StorageSettings(buffer_bound=buffer_bound, part_size=part_size), tz=HCM),
        )


def _call(sip_call_id: str, url: str) -> CallRecord:
    return CallRecord(
        provider=Provider.CDR_V2,
        cdr_id="cdr-1",
        sip_call_id=sip_call_id,
        started_at=datetime(2021, 2, 17, 10, 0, tzinfo=HCM),
        recording_url=url,
    )


@asynccontextmanager
async def counting_server(host: str) -> AsyncIterator[tuple[str, list[str]]]:
    """A server that counts every request it gets (it must get none)."""

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 100)

    async with serve({"/{tail:.*}": handler}, host=host) as server:
        yield server.url, server.hits


pytestmark = pytest.mark.sim(seed=4, calls=5, recording_fraction=1.0, max_size=100_000)


def _direct_url(sim: Simulator) -> tuple[str, str]:
    call = next(c for c in sim.calls if c.url_kind == "direct")
    return f"{sim.base_url}/recordings/{call.cdr_id}.{call.fmt}", call.sha256()


@pytest.mark.parametrize(
    "hostile", ["../x", "a/b", "../../../../etc/passwd", "..", "x\x00y", "/abs", "a\\b", "é" * 300]
)
async def test_a_hostile_sip_call_id_stays_inside_its_folder(sim, tmp_path, hostile):
    url, sha = _direct_url(sim)
    root = tmp_path / "archive"
    async with (
        open_store(StorageSettings(url=str(root))) as store,
        transferrer(store, sim.base_url) as t,
    ):
        result = await t.transfer(_call(hostile, url))
    assert result.verdict is Verdict.ARCHIVED, result.reason
    assert result.stored is not None
    key = result.stored.key
    assert key.startswith("recordings/2021/02/17/")
    assert "/" not in key.removeprefix("recordings/2021/02/17/")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1
    assert files[0].resolve().is_relative_to((root / "recordings/2021/02/17").resolve())
    assert result.stored.sha256 == sha


async def test_a_private_address_is_never_contacted(sim, tmp_path):
    async with counting_server("127.0.0.2") as (other, hits):
        async with (
            open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
            transferrer(store, sim.base_url) as t,
        ):
            result = await t.transfer(_call("x", f"{other}/rec.wav"))
    assert result.verdict is Verdict.FAILED
    assert "private or special address" in result.reason
    assert result.kind is FailureKind.HOST_NOT_ALLOWED
    assert hits == []


async def test_a_name_resolving_to_a_private_address_is_refused_at_connect(sim, tmp_path):
    async with counting_server("127.0.0.1") as (other, hits):
        port = other.rsplit(":", 1)[1]
        async with (
            open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
            # The API is at 127.0.0.1 by number; "localhost" is another name.
            transferrer(store, sim.base_url) as t,
        ):
            result = await t.transfer(_call("x", f"http://localhost:{port}/rec.wav"))
    assert result.verdict is Verdict.FAILED
    assert "resolves to a private or special address" in result.reason
    assert result.kind is FailureKind.HOST_NOT_ALLOWED
    assert hits == []


async def test_a_redirect_to_a_private_address_is_refused(sim, tmp_path):
    async with counting_server("127.0.0.2") as (other, hits):

        async def redirect(_: web.Request) -> web.Response:
            raise web.HTTPFound(f"{other}/rec.wav")

        async with serve({"/r": redirect}) as api_server:
            api = api_server.url
            async with (
                open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
                transferrer(store, api) as t,
            ):
                result = await t.transfer(_call("x", f"{api}/r"))
    assert result.verdict is Verdict.FAILED
    assert "127.0.0.2" in result.reason
    assert hits == []


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a.wav", "file:///etc/passwd", "http://169.254.169.254/latest/"]
)
async def test_other_schemes_and_metadata_addresses_are_refused(sim, tmp_path, url):
    async with (
        open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
        transferrer(store, sim.base_url) as t,
    ):
        result = await t.transfer(_call("x", url))
    assert result.verdict is Verdict.FAILED


async def test_a_recording_larger_than_the_buffer_bound_goes_up_as_multipart(
    tmp_path, make_bucket, s3_settings, seaweed
):
    size = 11 * MiB + 123
    sim = Simulator(SimConfig(seed=2, calls=3, recording_fraction=1.0, fixed_size=size))
    bucket = await make_bucket()
    async with sim.serve() as base:
        sim.base_url = base
        url, sha = _direct_url(sim)
        async with (
            open_store(s3_settings(bucket)) as store,
            transferrer(store, base, buffer_bound=64 * 1024, part_size=5 * MiB) as t,
        ):
            result = await t.transfer(_call("big-call", url))
            assert result.verdict is Verdict.ARCHIVED, result.reason
            assert result.stored is not None
            full_key = store.full_key(result.stored.key)
    assert result.stored.size == size
    assert result.stored.sha256 == sha
    async with admin_client(seaweed) as client:
        head = await client.head_object(Bucket=bucket, Key=full_key)
        # S3 marks a multipart object's ETag with its part count: 5 + 5 + 1 MiB.
        assert head["ETag"].strip('"').endswith("-3")
        body = await (await client.get_object(Bucket=bucket, Key=full_key))["Body"].read()
        import hashlib

        assert hashlib.sha256(body).hexdigest() == sha
        uploads = await client.list_multipart_uploads(Bucket=bucket)
        assert uploads.get("Uploads", []) == []


async def test_a_small_recording_goes_up_in_one_put(tmp_path, make_bucket, s3_settings, seaweed):
    sim = Simulator(SimConfig(seed=2, calls=3, recording_fraction=1.0, fixed_size=200_000))
    bucket = await make_bucket()
    async with sim.serve() as base:
        sim.base_url = base
        url, _ = _direct_url(sim)
        async with (
            open_store(s3_settings(bucket)) as store,
            transferrer(store, base) as t,
        ):
            result = await t.transfer(_call("small-call", url))
            assert result.stored is not None
            full_key = store.full_key(result.stored.key)
    async with admin_client(seaweed) as client:
        head = await client.head_object(Bucket=bucket, Key=full_key)
        assert "-" not in head["ETag"].strip('"')


async def test_a_truncated_large_recording_leaves_no_object_and_no_upload(
    tmp_path, make_bucket, s3_settings, seaweed
):
    from archiver.simulator import Faults

    size = 11 * MiB
    sim = Simulator(
        SimConfig(
            seed=2,
            calls=3,
            recording_fraction=1.0,
            fixed_size=size,
            faults=Faults(rec_truncated=1.0),
        )
    )
    bucket = await make_bucket()
    async with sim.serve() as base:
        sim.base_url = base
        url, _ = _direct_url(sim)
        async with (
            open_store(s3_settings(bucket)) as store,
            transferrer(store, base, buffer_bound=64 * 1024, part_size=5 * MiB) as t,
        ):
            result = await t.transfer(_call("cut-call", url))
    assert result.verdict is Verdict.RETRY
    async with admin_client(seaweed) as client:
        listing = await client.list_objects_v2(Bucket=bucket)
        assert listing.get("Contents", []) == []
        uploads = await client.list_multipart_uploads(Bucket=bucket)
        assert uploads.get("Uploads", []) == []


async def test_html_with_status_200_is_refused_and_nothing_written(tmp_path):
    from archiver.simulator import Faults

    sim = Simulator(SimConfig(seed=2, calls=3, recording_fraction=1.0, faults=Faults(rec_html=1.0)))
    async with sim.serve() as base:
        sim.base_url = base
        url, _ = _direct_url(sim)
        async with (
            open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
            transferrer(store, base) as t,
        ):
            result = await t.transfer(_call("html-call", url))
    assert result.verdict is Verdict.RETRY
    assert "not audio (text/html)" in result.reason
    assert result.kind is FailureKind.NOT_AUDIO
    assert [p for p in Path(tmp_path).rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("extension", ["_archiver", "manifests"])
async def test_a_value_that_would_enter_a_reserved_folder_fails_that_call_only(
    sim, tmp_path, extension
):
    url, _ = _direct_url(sim)
    policy = HostPolicy([], sim.base_url)
    async with (
        open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
        aiohttp.ClientSession() as session,
    ):
        t = Transferrer(
            session,
            store,
            policy,
            TransferConfig(
                StorageSettings(key_template="{extension}/{sip_call_id}.{ext}", part_size=5 * MiB),
                tz=HCM,
            ),
        )
        call = CallRecord(
            provider=Provider.CDR_V2,
            cdr_id="c",
            sip_call_id="s",
            started_at=datetime(2021, 2, 17, tzinfo=HCM),
            extension=extension,
            recording_url=url,
        )
        result = await t.transfer(call)
    assert result.verdict is Verdict.FAILED
    assert [p for p in (tmp_path / "a").rglob("*") if p.is_file()] == []
