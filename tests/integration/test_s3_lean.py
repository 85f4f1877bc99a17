"""The lean PutObject (archiver/storage/s3_lean.py) against SeaweedFS: the same request
as the full client's on the wire, and the same effect (conditional write refused when
the key is taken, checksum checked by the server, the same proof recorded)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from archiver.errors import RetriableError
from archiver.storage import ObjectExistsError, PutOutcome, Written, open_store
from archiver.storage.s3 import S3Store
from tests.support.seaweed import MakeBucket, S3Settings

# Headers that differ between any two requests (time, signature, attempt ids, client name).
_VOLATILE = {
    "x-amz-date",
    "authorization",
    "amz-sdk-invocation-id",
    "amz-sdk-request",
    "user-agent",
}


@asynccontextmanager
async def _store(settings: Any) -> AsyncIterator[S3Store]:
    async with open_store(settings) as store:
        assert isinstance(store, S3Store)
        yield store


@contextmanager
def _wire(store: S3Store) -> Iterator[list[tuple[str, dict[str, str]]]]:
    """Every request the store's HTTP session sends: (method and URL, headers)."""
    http = store.client._endpoint.http_session
    sent: list[tuple[str, dict[str, str]]] = []
    real = http.send

    async def spy(request: Any) -> Any:
        headers = {k.lower(): _text(v) for k, v in request.headers.items()}
        sent.append((f"{request.method} {request.url}", headers))
        return await real(request)

    http.send = spy
    try:
        yield sent
    finally:
        http.send = real


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _puts(sent: list[tuple[str, dict[str, str]]]) -> list[dict[str, str]]:
    return [headers for line, headers in sent if line.startswith("PUT ")]


async def _put(store: S3Store, key: str, data: bytes, sha: str | None = None) -> Written:
    digest = sha or hashlib.sha256(data).hexdigest()
    return await store.put_bytes(key, data, sha256=digest, content_type="audio/wav")


@pytest.mark.parametrize("locked", [False, True], ids=["plain", "object-lock"])
async def test_the_lean_put_sends_the_full_clients_request_and_records_the_same_proof(
    make_bucket: MakeBucket, s3_settings: S3Settings, locked: bool
) -> None:
    bucket = await make_bucket(object_lock=locked)
    lock = {"object_lock_mode": "GOVERNANCE", "retention_days": 1} if locked else {}
    data = os.urandom(200 * 1024)
    async with _store(s3_settings(bucket, lean_put=False, **lock)) as full:
        with _wire(full) as sent:
            by_full = await _put(full, "2026/12/04/full.wav", data)
        full_headers = _puts(sent)
    async with _store(s3_settings(bucket, **lock)) as lean:
        # The proof that the lean path is taken: botocore's PutObject never runs.
        operations: list[str] = []
        lean.client.meta.events.register(
            "before-call.s3.PutObject", lambda **kw: operations.append("PutObject")
        )
        with _wire(lean) as sent:
            by_lean = await _put(lean, "2026/12/04/lean.wav", data)
        lean_headers = _puts(sent)
        assert operations == []
        assert len(full_headers) == len(lean_headers) == 1
        ours, theirs = lean_headers[0], full_headers[0]
        if locked:
            assert "x-amz-object-lock-retain-until-date" in theirs
            # Written a moment apart: the same format, the date itself may move a second.
            for headers in (ours, theirs):
                assert headers.pop("x-amz-object-lock-retain-until-date").endswith("Z")
        for name in _VOLATILE:
            ours.pop(name, None)
            theirs.pop(name, None)
        assert ours == theirs  # content-length, checksum, If-None-Match, metadata, lock...
        assert {"content-length", "x-amz-checksum-sha256", "if-none-match"} <= set(ours)
        # The same effect: the same proof recorded, the same object on the server.
        assert by_lean.outcome == by_full.outcome == PutOutcome.CREATED
        assert by_lean.proof.etag == by_full.proof.etag
        assert by_lean.proof.checksum_sha256 == by_full.proof.checksum_sha256
        assert by_lean.proof.checksum_type == by_full.proof.checksum_type
        assert (by_lean.proof.version_id is None) == (by_full.proof.version_id is None)
        for key in ("2026/12/04/full.wav", "2026/12/04/lean.wav"):
            stored = await lean.head(key)
            assert stored is not None
            assert (stored.size, stored.sha256, stored.content_type) == (
                len(data),
                hashlib.sha256(data).hexdigest(),
                "audio/wav",
            )
            assert b"".join([c async for c in lean.read(key)]) == data
            if locked:
                protection = await lean.protection(key)
                assert protection is not None
                assert protection.mode == "GOVERNANCE"


async def test_a_taken_key_is_refused_by_the_server_and_compared(
    make_bucket: MakeBucket, s3_settings: S3Settings
) -> None:
    bucket = await make_bucket()
    data, other = os.urandom(64 * 1024), os.urandom(64 * 1024)
    async with _store(s3_settings(bucket)) as store:
        first = await _put(store, "r/taken.wav", data)
        with _wire(store) as sent:
            again = await _put(store, "r/taken.wav", data)
        assert first.outcome == PutOutcome.CREATED
        assert again.outcome == PutOutcome.ALREADY_PRESENT
        assert again.proof.etag == first.proof.etag
        assert _puts(sent)[0]["if-none-match"] == "*"
        with pytest.raises(ObjectExistsError):
            await _put(store, "r/taken.wav", other)
        assert b"".join([c async for c in store.read("r/taken.wav")]) == data


async def test_bytes_that_do_not_match_their_checksum_are_refused_by_the_server(
    make_bucket: MakeBucket, s3_settings: S3Settings
) -> None:
    bucket = await make_bucket()
    data = os.urandom(32 * 1024)
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    async with _store(s3_settings(bucket)) as store:
        with _wire(store) as sent, pytest.raises(RetriableError, match="checksum"):
            await _put(store, "r/bad.wav", data, sha=wrong)
        # The lean PUT was refused by the server first, then the full client's.
        assert len(_puts(sent)) >= 2
        assert await store.head("r/bad.wav") is None


async def test_a_lean_put_that_cannot_be_sent_hands_the_write_to_the_full_client(
    make_bucket: MakeBucket, s3_settings: S3Settings
) -> None:
    bucket = await make_bucket()
    data = os.urandom(16 * 1024)
    async with _store(s3_settings(bucket)) as store:
        http = store.client._endpoint.http_session
        real, failed = http.send, []

        async def first_send_fails(request: Any) -> Any:
            if not failed:
                failed.append(request.url)
                raise ConnectionResetError("reset by the test")
            return await real(request)

        http.send = first_send_fails
        try:
            written = await _put(store, "r/retried.wav", data)
        finally:
            http.send = real
        assert failed
        assert written.outcome == PutOutcome.CREATED
        assert b"".join([c async for c in store.read("r/retried.wav")]) == data


async def test_keys_that_need_quoting_land_under_the_same_key(
    make_bucket: MakeBucket, s3_settings: S3Settings
) -> None:
    bucket = await make_bucket()
    data = b"RIFF" + os.urandom(1024)
    key = "2026/12/04/agent 7+x=y~z_ngày.wav"
    async with _store(s3_settings(bucket)) as store:
        await _put(store, key, data)
        listed = [o.key async for o in store.list("2026/12/04/")]
        assert listed == [key]


async def test_a_body_over_one_mib_and_a_store_with_the_lean_put_off_use_the_full_client(
    make_bucket: MakeBucket, s3_settings: S3Settings
) -> None:
    bucket = await make_bucket()
    small, large = os.urandom(8 * 1024), os.urandom(1024 * 1024 + 1)
    operations: list[str] = []
    for lean_put, data, through_botocore in (
        (True, small, False),
        (True, large, True),
        (False, small, True),
    ):
        async with _store(s3_settings(bucket, lean_put=lean_put)) as store:
            operations.clear()
            store.client.meta.events.register(
                "before-call.s3.PutObject", lambda **kw: operations.append("PutObject")
            )
            key = f"r/{lean_put}-{len(data)}.wav"
            written = await _put(store, key, data)
            assert written.outcome == PutOutcome.CREATED
            assert operations == (["PutObject"] if through_botocore else [])
            assert b"".join([c async for c in store.read(key)]) == data
