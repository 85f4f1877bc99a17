"""The chain's timestamp glue on a local directory: a head is stamped only over the
link it names, and verify's check finds each writer's head token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from archiver.manifest.chain import Head, next_link, sha256_hex
from archiver.manifest.stamps import check_head_stamps, stamp_head
from archiver.manifest.writer import advance_head
from archiver.settings import TimestampSettings
from archiver.storage.layout import link_key, stamp_key
from archiver.storage.local import LocalStore
from archiver.timestamping import Stamper, TokenState, load_anchors
from tests.support.tsa import Pki, make_pki, serve_tsa

WRITER = "w0123456789ab"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
async def stamper(pki: Pki) -> AsyncIterator[Stamper]:
    async with serve_tsa(pki) as (_, url), aiohttp.ClientSession() as session:
        settings = TimestampSettings(url=url, ca_bundle=pki.ca_cert)
        yield Stamper(session, settings, load_anchors(pki.ca_cert))


async def _chain(store: LocalStore, links: int) -> list[bytes]:
    """``links`` links of one writer, the head moved after each (no manifests needed)."""
    out: list[bytes] = []
    previous = None
    for seq in range(1, links + 1):
        link = next_link(
            WRITER,
            seq,
            f"manifests/date=2021-02-17/{seq:012d}-{WRITER}.jsonl",
            b"line\n",
            1,
            previous,
        )
        data = link.to_bytes()
        await store.put_bytes(
            link.key, data, sha256=sha256_hex(data), content_type="application/json"
        )
        await advance_head(store, data)
        previous = (seq, sha256_hex(data))
        out.append(data)
    return out


async def test_the_head_s_link_is_stamped_and_found(tmp_path, pki, stamper):
    store = LocalStore(tmp_path / "archive")
    links = await _chain(store, 2)
    stamp = await stamp_head(store, stamper, Head.of(links[-1]))
    assert stamp is not None
    assert (tmp_path / "archive" / stamp_key(WRITER, 2)).read_bytes() == stamp.token
    (found,) = await check_head_stamps(store, load_anchors(pki.ca_cert))
    assert found.writer == WRITER
    assert found.check.state is TokenState.VALID
    assert found.line().startswith(f"TIMESTAMP chain {WRITER}: time-stamped at ")


async def test_a_head_whose_link_was_swapped_is_not_stamped(tmp_path, pki, stamper):
    store = LocalStore(tmp_path / "archive")
    links = await _chain(store, 2)
    # Someone rewrote the link after the head recorded its SHA-256.
    (tmp_path / "archive" / link_key(WRITER, 2)).write_bytes(links[0])
    assert await stamp_head(store, stamper, Head.of(links[-1])) is None
    assert not (tmp_path / "archive" / stamp_key(WRITER, 2)).exists()
    # verify leaves that head to the chain audit (it reports the altered link).
    assert await check_head_stamps(store, load_anchors(pki.ca_cert)) == []


async def test_a_head_whose_link_is_gone_is_not_stamped(tmp_path, stamper):
    store = LocalStore(tmp_path / "archive")
    links = await _chain(store, 1)
    (tmp_path / "archive" / link_key(WRITER, 1)).unlink()
    assert await stamp_head(store, stamper, Head.of(links[0])) is None


async def test_an_unstamped_head_is_reported_missing(tmp_path, pki):
    store = LocalStore(tmp_path / "archive")
    await _chain(store, 3)
    (found,) = await check_head_stamps(store, load_anchors(pki.ca_cert))
    assert found.check.state is TokenState.MISSING
    assert found.check.key.endswith(stamp_key(WRITER, 3))


async def test_a_head_the_tsa_could_not_stamp_is_stamped_at_the_next_write(tmp_path, pki):
    from archiver.manifest.stamps import head_stamper
    from archiver.timestamping import verify_token
    from tests.support.tsa import Mode

    store = LocalStore(tmp_path / "archive")
    links = await _chain(store, 3)
    async with serve_tsa(pki) as (server, url), aiohttp.ClientSession() as session:
        settings = TimestampSettings(url=url, ca_bundle=pki.ca_cert)
        hook = head_stamper(Stamper(session, settings, load_anchors(pki.ca_cert)))
        server.mode = Mode.ERROR_500
        await hook(store, Head.of(links[1]))
        assert await store.head(stamp_key(WRITER, 2)) is None  # UNPROVEN until the next write
        server.mode = Mode.OK
        await hook(store, Head.of(links[2]))
    tokens = []
    for seq in (2, 3):
        token = b"".join([c async for c in store.read(stamp_key(WRITER, seq))])
        tokens.append(verify_token(token, links[seq - 1], load_anchors(pki.ca_cert)))
    assert tokens[0].gen_time <= tokens[1].gen_time  # stamped first: the chain's order
