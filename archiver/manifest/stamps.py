"""Trusted timestamps of the manifest chain (RFC 3161, optional).

Each time a writer's head moves to a link, that link's bytes are time-stamped
(the token's imprint is the SHA-256 the head records) and the token is stored
beside the link, ``_archiver/chain/<writer>/<seq>.tsr``, written once. As every
link names its predecessor by SHA-256, a token of the head's link dates the
whole chain up to it: every manifest object it links existed by then.

So every link gets a token of its own: ``verify`` checks each one from a
writer's first stamped link on (:mod:`archiver.retrieval.stamp_audit`). A
head the TSA could not stamp is stamped at the writer's next write, before the
new head. The TSA client and the token checks are :mod:`archiver.timestamping`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography import x509

from archiver.manifest.chain import Head, sha256_hex
from archiver.manifest.reader import read_object
from archiver.manifest.writer import HeadHook
from archiver.storage.base import ObjectStore
from archiver.storage.layout import CHAIN_PREFIX, head_key, link_key, parse_chain_key, stamp_key
from archiver.timestamping import Stamper, Timestamp, TokenCheck, check_stored, stamp_and_store

log = logging.getLogger("archiver.manifest")

# Heads left unstamped while the authority is down, stamped at the next write: a
# bound on memory (an outage longer than this many writes leaves the oldest
# UNPROVEN in verify).
PENDING_BOUND = 1000


async def _stamp(store: ObjectStore, stamper: Stamper, head: Head) -> Timestamp | bool:
    """The token, or False when the authority failed (worth another try), or True when
    there is nothing to stamp (the link is gone or is not the one the head names)."""
    try:
        data = await read_object(store, link_key(head.writer, head.seq))
    except KeyError:
        log.warning("chain head of writer %s not time-stamped: its link is gone", head.writer)
        return True
    if sha256_hex(data) != head.link_sha256:
        log.warning(
            "chain head of writer %s not time-stamped: its link is not the one it names",
            head.writer,
        )
        return True
    stamp = await stamp_and_store(store, stamper, data, stamp_key(head.writer, head.seq))
    return False if stamp is None else stamp


async def stamp_head(store: ObjectStore, stamper: Stamper, head: Head) -> Timestamp | None:
    """Time-stamp the link ``head`` names and store the token beside it; None if not done.

    Never raises for the TSA or for a link that is not the head's: the archive
    goes on, and ``verify`` reports the token missing.
    """
    stamp = await _stamp(store, stamper, head)
    return stamp if isinstance(stamp, Timestamp) else None


def head_stamper(stamper: Stamper) -> HeadHook:
    """The writer's hook that time-stamps each new head.

    A head the authority could not stamp is kept, in memory, and stamped first
    at the next head (so the tokens stay in the chain's order): ``verify``
    reports it UNPROVEN until then. At most :data:`PENDING_BOUND` are kept.
    """
    pending: list[Head] = []

    async def on_head(store: ObjectStore, head: Head) -> None:
        while pending:
            if await _stamp(store, stamper, pending[0]) is False:
                break
            pending.pop(0)
        if pending or await _stamp(store, stamper, head) is False:
            pending.append(head)
            del pending[:-PENDING_BOUND]

    return on_head


@dataclass(frozen=True, slots=True)
class HeadStamp:
    """The timestamp check of one writer's head."""

    writer: str
    check: TokenCheck

    def line(self) -> str:
        """One line for the verify report."""
        return f"TIMESTAMP chain {self.writer}: {self.check.describe()}"


async def check_head_stamps(
    store: ObjectStore, anchors: list[x509.Certificate] | None
) -> list[HeadStamp]:
    """The token of every writer's head link, checked (a head or link that cannot be
    read is skipped here: the chain audit reports it)."""
    writers = sorted(
        {
            parsed[0]
            async for obj in store.list(CHAIN_PREFIX)
            if (parsed := parse_chain_key(obj.key)) is not None and parsed[1] is None
        }
    )
    found = []
    for writer in writers:
        try:
            head = Head.from_bytes(await read_object(store, head_key(writer)))
            data = await read_object(store, link_key(writer, head.seq))
        except (KeyError, ValueError):
            continue
        if sha256_hex(data) != head.link_sha256:
            continue
        check = await check_stored(store, data, stamp_key(writer, head.seq), anchors)
        found.append(HeadStamp(writer, check))
    return found
