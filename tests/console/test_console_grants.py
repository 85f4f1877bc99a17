"""A play grant is short-lived and serves only the checked bytes (SeaweedFS, real HTTP).

The grant Play gives expires; each Range request first HEADs the object and
compares it with the manifest's proof; in a versioned bucket the version the
line pinned is what plays, whatever replaced the current object since.
"""

from __future__ import annotations

import hashlib

from archiver.console import media
from tests.support.console import archived_storage, first_call_id, running_console, signed_in
from tests.support.seaweed import admin_client


async def _play(http, call_id: int) -> str:
    data = {"csrf": http.csrf, "reason": "complaint 7"}
    async with http.post(f"/calls/{call_id}/play", data=data) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["src"])


async def test_a_grant_expires(local_archive, tmp_path, monkeypatch):
    monkeypatch.setattr(media, "GRANT_SECONDS", 0.0)  # expired by the time it is used
    async with running_console(local_archive, tmp_path) as console:
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http)
            src = await _play(http, call_id)
            async with http.get(src, headers={"Range": "bytes=0-99"}) as resp:
                assert resp.status == 403
                assert "expired" in await resp.text()
            async with http.get(src, headers={"Range": "bytes=0-99"}) as resp:
                assert resp.status == 403  # and it is gone


async def test_a_recording_replaced_after_play_is_refused(
    tmp_path, make_bucket, s3_settings, seaweed
):
    bucket = await make_bucket()
    storage = s3_settings(bucket)
    await archived_storage(storage, tmp_path / "builder", calls=2)
    async with running_console(storage, tmp_path) as console:
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http)
            item = await console.console.calls.get(call_id)
            src = await _play(http, call_id)
            async with http.get(src, headers={"Range": "bytes=0-99"}) as resp:
                assert resp.status == 206
            async with admin_client(seaweed) as client:
                await client.put_object(
                    Bucket=bucket, Key=item.call.object_key, Body=b"x" * item.call.size
                )
            async with http.get(src, headers={"Range": "bytes=0-99"}) as resp:
                assert resp.status == 409
                text = await resp.text()
            assert "altered since it was checked" in text
            assert "etag" in text
            async with http.get(f"/calls/{call_id}") as resp:
                assert "altered since it was checked" in await resp.text()


async def test_the_pinned_version_plays_in_a_versioned_bucket(
    tmp_path, make_bucket, s3_settings, seaweed
):
    bucket = await make_bucket(object_lock=True)  # versioned
    storage = s3_settings(bucket)
    await archived_storage(storage, tmp_path / "builder", calls=2)
    async with running_console(storage, tmp_path) as console:
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http)
            call = (await console.console.calls.get(call_id)).call
            assert call.proof is not None
            assert call.proof.version_id
            src = await _play(http, call_id)
            async with admin_client(seaweed) as client:
                await client.put_object(Bucket=bucket, Key=call.object_key, Body=b"x" * call.size)
            async with http.get(src) as resp:
                assert resp.status == 200
                whole = await resp.read()
            assert hashlib.sha256(whole).hexdigest() == call.sha256
            async with http.get(src, headers={"Range": "bytes=1000-1999"}) as resp:
                assert resp.status == 206
                assert await resp.read() == whole[1000:2000]
