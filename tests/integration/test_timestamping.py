"""RFC 3161 timestamps against a real local TSA (OpenSSL's ``ts -reply`` over HTTP
on loopback): tokens asked, checked on arrival and checked again as ``verify`` does,
with the TSA down, slow, lying or replaying, and tokens forged or altered at rest.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from archiver.errors import TimestampInvalidError, TimestampUnavailableError
from archiver.settings import TimestampSettings
from archiver.storage.local import LocalStore
from archiver.timestamping import (
    MAX_REPLY_BYTES,
    Stamper,
    TokenState,
    certificates_in_der_order,
    check_stored,
    load_anchors,
    open_stamper,
    stamp_and_store,
    verify_anchors,
    verify_token,
)
from tests.support.seaweed import free_ports
from tests.support.tsa import OPENSSL, LocalTsa, Mode, Pki, make_pki, serve_tsa

HEAD = b'{"writer": "w1", "last": "manifests/date=2026-11-29/batch-000001.jsonl"}\n'
KEY = "_archiver/chain/w1/000000000001.tsr"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "trusted")


@pytest.fixture
def anchors(pki: Pki) -> list[x509.Certificate]:
    return load_anchors(pki.ca_cert)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def tsa(pki: Pki) -> AsyncIterator[tuple[LocalTsa, str]]:
    async with serve_tsa(pki) as served:
        yield served


def _stamper(session: aiohttp.ClientSession, url: str, pki: Pki, timeout: float = 10.0) -> Stamper:
    settings = TimestampSettings(url=url, ca_bundle=pki.ca_cert, timeout=timeout)
    return Stamper(session, settings, load_anchors(pki.ca_cert))


async def test_a_token_is_asked_checked_and_checked_again_later(session, pki, anchors, tsa):
    server, url = tsa
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = await _stamper(session, url, pki).stamp(HEAD)
    after = datetime.now(UTC)
    assert server.queries == 1
    assert before - timedelta(seconds=1) <= stamp.gen_time <= after + timedelta(seconds=1)
    assert stamp.tsa == "CN=Test TSA"
    # Later, as verify does: no nonce to compare, the same bytes and the same anchors.
    again = verify_token(stamp.token, HEAD, anchors)
    assert (again.gen_time, again.serial_number) == (stamp.gen_time, stamp.serial_number)


async def test_a_token_for_other_bytes_is_refused(session, pki, anchors, tsa):
    _, url = tsa
    stamp = await _stamper(session, url, pki).stamp(HEAD)
    with pytest.raises(TimestampInvalidError, match="stamps other bytes"):
        verify_token(stamp.token, HEAD + b" ", anchors)


async def test_a_token_signed_under_an_untrusted_ca_is_refused(session, pki, anchors, tmp_path):
    rogue = make_pki(tmp_path / "rogue", "Rogue")
    async with serve_tsa(rogue) as (_, url):
        # The client trusts only the real CA: the rogue TSA's token is refused on arrival...
        with pytest.raises(TimestampInvalidError, match="does not verify up to"):
            await _stamper(session, url, pki).stamp(HEAD)
        # ...and a rogue token put in place later is refused by the check too.
        token = (await _stamper(session, url, rogue).stamp(HEAD)).token
    with pytest.raises(TimestampInvalidError, match="does not verify up to"):
        verify_token(token, HEAD, anchors)


def _flip(token: bytes, at: int) -> bytes:
    altered = bytearray(token)
    altered[at] ^= 0x01
    return bytes(altered)


def _tampered(token: bytes, stamp_time: datetime) -> dict[str, bytes]:
    gen_time = stamp_time.strftime("%Y%m%d%H%M%S").encode()
    at = token.index(gen_time)
    later = stamp_time - timedelta(days=1)
    return {
        # The time itself moved back a day: the signature no longer matches.
        "genTime": token[:at] + later.strftime("%Y%m%d%H%M%S").encode() + token[at + 14 :],
        "signature": _flip(token, len(token) - 3),
        "embedded certificate": _flip(token, token.index(b"Test TSA") + 2),
        "truncated": token[: len(token) // 2],
        "empty": b"",
    }


@pytest.mark.parametrize(
    "how", ["genTime", "signature", "embedded certificate", "truncated", "empty"]
)
async def test_a_tampered_token_is_refused(session, pki, anchors, tsa, how):
    _, url = tsa
    stamp = await _stamper(session, url, pki).stamp(HEAD)
    with pytest.raises(TimestampInvalidError):
        verify_token(_tampered(stamp.token, stamp.gen_time)[how], HEAD, anchors)


async def test_a_replayed_answer_is_refused_by_its_nonce(session, pki, tsa):
    server, url = tsa
    stamper = _stamper(session, url, pki)
    await stamper.stamp(HEAD)
    # A TSA (or someone between) answering the same bytes with an old token.
    server.mode = Mode.REPLAY
    with pytest.raises(TimestampInvalidError, match="nonce"):
        await stamper.stamp(HEAD)


@pytest.mark.parametrize(
    ("mode", "error", "message"),
    [
        (Mode.ERROR_500, TimestampUnavailableError, "answered HTTP 500"),
        (Mode.SLOW, TimestampUnavailableError, "did not answer in time"),
        (Mode.HUGE, TimestampInvalidError, f"more than {MAX_REPLY_BYTES} bytes"),
        (Mode.GARBAGE, TimestampInvalidError, "does not parse"),
    ],
)
async def test_a_failing_tsa_gives_one_clear_error(session, pki, tsa, mode, error, message):
    server, url = tsa
    server.mode = mode
    with pytest.raises(error, match=message) as caught:
        await _stamper(session, url, pki, timeout=1.0).stamp(HEAD)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(("TSA http://127.0.0.1:", "not a timestamp token"))


async def test_a_tsa_that_is_down_is_a_retriable_error(session, pki):
    (port,) = free_ports(1)
    with pytest.raises(TimestampUnavailableError, match="connection failed"):
        await _stamper(session, f"http://127.0.0.1:{port}/", pki).stamp(HEAD)


async def test_the_url_s_secrets_stay_out_of_errors(session, pki):
    (port,) = free_ports(1)
    url = f"http://user:hunter2@127.0.0.1:{port}/tsa?apikey=hunter2"
    with pytest.raises(TimestampUnavailableError) as caught:
        await _stamper(session, url, pki).stamp(HEAD)
    assert "hunter2" not in str(caught.value)


# --- Stored tokens, as the writer stores them and verify finds them ---------------


async def test_a_stored_token_is_found_and_valid(session, pki, anchors, tsa, tmp_path):
    _, url = tsa
    store = LocalStore(tmp_path / "archive")
    stamp = await stamp_and_store(store, _stamper(session, url, pki), HEAD, KEY)
    assert stamp is not None
    assert (tmp_path / "archive" / KEY).read_bytes() == stamp.token
    check = await check_stored(store, HEAD, KEY, anchors)
    assert check.state is TokenState.VALID
    assert check.stamp is not None
    assert check.stamp.gen_time == stamp.gen_time
    assert "time-stamped at" in check.describe()


async def test_stamping_the_same_head_again_keeps_the_first_token(session, pki, tsa, tmp_path):
    _, url = tsa
    store = LocalStore(tmp_path / "archive")
    stamper = _stamper(session, url, pki)
    first = await stamp_and_store(store, stamper, HEAD, KEY)
    second = await stamp_and_store(store, stamper, HEAD, KEY)
    assert first is not None
    assert second is not None
    assert first.token != second.token
    assert (tmp_path / "archive" / KEY).read_bytes() == first.token


async def test_with_the_tsa_down_the_head_is_left_unstamped_and_reported_missing(
    session, pki, anchors, tsa, tmp_path
):
    server, url = tsa
    store = LocalStore(tmp_path / "archive")
    server.mode = Mode.ERROR_500
    assert await stamp_and_store(store, _stamper(session, url, pki), HEAD, KEY) is None
    check = await check_stored(store, HEAD, KEY, anchors)
    assert check.state is TokenState.MISSING
    assert "no timestamp token" in check.describe()
    # The TSA back: the next head written (which chains over this one) is stamped.
    server.mode = Mode.OK
    following, following_key = HEAD + b'{"previous": 1}\n', KEY.replace("01.tsr", "02.tsr")
    stamper = _stamper(session, url, pki)
    assert await stamp_and_store(store, stamper, following, following_key) is not None
    assert (await check_stored(store, following, following_key, anchors)).state is TokenState.VALID


async def test_a_token_moved_onto_another_head_is_invalid(session, pki, anchors, tsa, tmp_path):
    _, url = tsa
    store = LocalStore(tmp_path / "archive")
    stamp = await stamp_and_store(store, _stamper(session, url, pki), HEAD, KEY)
    assert stamp is not None
    forged_head, forged_key = HEAD.replace(b"000001", b"000002"), KEY.replace("01.tsr", "02.tsr")
    (tmp_path / "archive" / forged_key).write_bytes(stamp.token)
    check = await check_stored(store, forged_head, forged_key, anchors)
    assert check.state is TokenState.INVALID
    assert "INVALID: it stamps other bytes" in check.describe()


async def test_a_stored_token_altered_at_rest_is_invalid(session, pki, anchors, tsa, tmp_path):
    _, url = tsa
    store = LocalStore(tmp_path / "archive")
    stamp = await stamp_and_store(store, _stamper(session, url, pki), HEAD, KEY)
    assert stamp is not None
    path = tmp_path / "archive" / KEY
    path.write_bytes(_tampered(stamp.token, stamp.gen_time)["genTime"])
    assert (await check_stored(store, HEAD, KEY, anchors)).state is TokenState.INVALID
    path.write_bytes(b"\x00" * (MAX_REPLY_BYTES + 10))
    check = await check_stored(store, HEAD, KEY, anchors)
    assert check.state is TokenState.INVALID
    assert check.reason == f"{MAX_REPLY_BYTES + 10} bytes: larger than any token"


async def test_a_token_without_a_ca_bundle_is_reported_unchecked(session, pki, tsa, tmp_path):
    _, url = tsa
    store = LocalStore(tmp_path / "archive")
    await stamp_and_store(store, _stamper(session, url, pki), HEAD, KEY)
    check = await check_stored(store, HEAD, KEY, None)
    assert check.state is TokenState.UNCHECKED
    assert "ARCHIVER_TIMESTAMP__CA_BUNDLE is not set" in check.describe()


async def test_open_stamper_is_none_without_a_url_and_stamps_with_one(pki, anchors, tsa):
    async with open_stamper(TimestampSettings()) as nothing:
        assert nothing is None
    assert verify_anchors(TimestampSettings()) is None
    _, url = tsa
    settings = TimestampSettings(url=url, ca_bundle=pki.ca_cert)
    async with open_stamper(settings) as stamper:
        assert stamper is not None
        stamp = await stamper.stamp(HEAD)
    assert verify_token(stamp.token, HEAD, verify_anchors(settings) or []).tsa == "CN=Test TSA"


async def test_a_stored_token_verifies_with_openssl_alone(session, pki, tsa, tmp_path):
    # The README's auditor check, without the archiver.
    _, url = tsa
    store = LocalStore(tmp_path / "archive")
    assert await stamp_and_store(store, _stamper(session, url, pki), HEAD, KEY) is not None
    stamped = tmp_path / "link.json"
    stamped.write_bytes(HEAD)
    token = str(tmp_path / "archive" / KEY)
    command = [OPENSSL, "ts", "-verify", "-in", token, "-CAfile", str(pki.ca_cert), "-data"]
    ok = subprocess.run([*command, str(stamped)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "Verification: OK" in ok.stdout
    stamped.write_bytes(HEAD + b" ")
    bad = subprocess.run([*command, str(stamped)], capture_output=True, text=True, check=False)
    assert bad.returncode != 0


async def test_a_tsa_sending_its_chain_unsorted_is_accepted(session, tmp_path):
    # OpenSSL puts the TSA's certificate first, then the CA's: not DER order.
    chained = make_pki(tmp_path / "chained", "Chained", send_chain=True)
    anchors = load_anchors(chained.ca_cert)
    async with serve_tsa(chained) as (_, url):
        stamp = await _stamper(session, url, chained).stamp(HEAD)
    assert certificates_in_der_order(stamp.token) != stamp.token
    assert verify_token(stamp.token, HEAD, anchors).tsa == "CN=Chained TSA"
    with pytest.raises(TimestampInvalidError, match="stamps other bytes"):
        verify_token(stamp.token, HEAD + b" ", anchors)
