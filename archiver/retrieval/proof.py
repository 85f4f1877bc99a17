"""Proving a manifest object is in the chain before a line of it is served.

``get``, ``hold`` and the console serve a line only from a manifest object
that :class:`ChainProver` proves as ``verify`` would: a link records the
object's key and exact SHA-256, and that link is reached by walking back from
its writer's head, each step checked against the SHA-256 the next link
records of it. A manifest object with no link (planted beside the chain), a
link beside the chain, or a link past the head (its batch cut from the
chain) is refused. A legacy object (named before the chain) is proven by the
``archiver seal`` link that records it, or refused as out of the chain.

The links proven are kept (writer, seq -> the link's SHA-256 and its
predecessor), so a console proving one play after another reads each link
once, and ``get`` keeps them in its local index for the next command
(:mod:`archiver.retrieval.proven_links`): a later walk uses a kept link only
where the link it comes from, itself proven, records that very SHA-256. Each
proof still reads the head, so a head moved back (a truncation) is seen at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from archiver.manifest.chain import Head, Link, sha256_hex
from archiver.manifest.reader import read_object
from archiver.retrieval.errors import IntegrityError, IntegrityKind
from archiver.storage.base import ObjectStore
from archiver.storage.layout import (
    CHAIN_PREFIX,
    head_key,
    link_key,
    parse_chain_key,
    parse_manifest_key,
)

# Links read at once while walking a chain, and at most per walk read ahead.
_CONCURRENCY = 16
_READ_AHEAD = 1024
# Links proven and held before they are handed to ``keep`` (a prover that keeps them).
KEEP_EVERY = 4096
SEAL_WRITER_PREFIX = "seal-"


@dataclass(frozen=True, slots=True)
class ProvenLink:
    """A link proven reachable from its writer's head: its SHA-256 and what it records of
    its predecessor."""

    sha256: str
    prev_seq: int | None
    prev_sha256: str | None


_Proven = ProvenLink


def _out(kind: IntegrityKind, text: str) -> IntegrityError:
    return IntegrityError(kind, text)


class ChainProver:
    """Proves manifest objects against their writer's chain, walked from its head."""

    def __init__(
        self,
        store: ObjectStore,
        kept: Mapping[tuple[str, int], ProvenLink] | None = None,
        keep: Callable[[Mapping[tuple[str, int], ProvenLink]], Awaitable[bool]] | None = None,
    ) -> None:
        """``kept``: links an earlier walk proved (``get`` keeps them in its local index,
        outside the storage's reach), used as this walk's own are; looked up as the walk
        needs them, never copied (it may be a view of a table of millions). ``keep``:
        where the links this prover proves go, :data:`KEEP_EVERY` at a time and after
        each proof, to be found again in ``kept`` and no longer held here once it says
        they are kept (the console, which runs for months; None: they are held,
        :meth:`added`)."""
        self._store = store
        self._kept: Mapping[tuple[str, int], ProvenLink] = kept if kept is not None else {}
        self._keep = keep
        self._backlog = 0  # links still held after a hand-over ``keep`` refused
        self._proven: dict[tuple[str, int], _Proven] = {}
        self._added: set[tuple[str, int]] = set()
        self._sealed: dict[str, tuple[str, int]] | None = None
        self._lock = asyncio.Lock()

    async def prove(self, manifest_key: str, content: bytes) -> Link:
        """The link that proves ``content`` is the manifest object ``manifest_key`` as the
        chain records it; IntegrityError (OUT_OF_CHAIN, CUT or CORRUPT) otherwise."""
        async with self._lock:  # one walk at a time: the second uses the first's links
            try:
                return await self._prove(manifest_key, content)
            finally:
                await self._hand_over()

    async def _hand_over(self) -> None:
        """The links proven so far to ``keep`` (if given), and no longer held here once
        kept (held, and handed over again with the next ones, when not)."""
        if self._keep is None or not self._added:
            return
        if not await self._keep(self.added()):
            self._backlog = len(self._added)  # tried again KEEP_EVERY links later
            return
        self._backlog = 0
        for key in self._added:
            del self._proven[key]
        self._added.clear()

    async def _prove(self, manifest_key: str, content: bytes) -> Link:
        parsed = parse_manifest_key(manifest_key)
        if parsed is not None:
            writer, seq = parsed.writer, parsed.seq
        else:
            read_before = self._sealed is not None
            sealed = (await self._seal_links()).get(manifest_key)
            if sealed is None and read_before:
                # Sealed since the seal links were read (a console runs for weeks).
                sealed = (await self._seal_links(again=True)).get(manifest_key)
            if sealed is None:
                raise _out(
                    IntegrityKind.OUT_OF_CHAIN,
                    f"manifest object {manifest_key} is in no chain: no link records it "
                    "(written before the chain and never sealed, or planted); not served",
                )
            writer, seq = sealed
        where = link_key(writer, seq)
        try:
            raw = await read_object(self._store, where)
            link = Link.from_bytes(raw)
        except KeyError:
            raise _out(
                IntegrityKind.OUT_OF_CHAIN,
                f"manifest object {manifest_key} is in no chain: its link {where} is missing "
                "(planted beside the chain, or its batch was cut from it); not served",
            ) from None
        except ValueError as exc:
            raise _out(IntegrityKind.CORRUPT, f"chain link {where} is unreadable: {exc}") from None
        if (link.writer, link.seq, link.manifest_key) != (writer, seq, manifest_key):
            raise _out(
                IntegrityKind.OUT_OF_CHAIN,
                f"chain link {where} records {link.manifest_key}, not {manifest_key}; not served",
            )
        if link.manifest_sha256 != sha256_hex(content):
            raise _out(
                IntegrityKind.CORRUPT,
                f"manifest object {manifest_key} was altered: its SHA-256 is not the one its "
                f"chain link {where} records; not served",
            )
        await self._on_chain(writer, seq, sha256_hex(raw))
        return link

    async def _on_chain(self, writer: str, seq: int, link_sha: str) -> None:
        """IntegrityError unless the walk back from ``writer``'s head reaches link ``seq``
        with SHA-256 ``link_sha``."""
        try:
            head = Head.from_bytes(await read_object(self._store, head_key(writer)))
        except KeyError:
            raise _out(
                IntegrityKind.CUT,
                f"the chain of writer {writer} has no head: link {seq} is not proven; "
                "not served (run archiver verify)",
            ) from None
        except ValueError as exc:
            raise _out(IntegrityKind.CORRUPT, f"the head of writer {writer}: {exc}") from None
        if head.seq < seq:
            raise _out(
                IntegrityKind.CUT,
                f"link {seq} of writer {writer} is past its chain's head (link {head.seq}): "
                "its batch was cut from the chain, or the link was planted; not served "
                "(run archiver verify)",
            )
        current: tuple[int, str] | None = (head.seq, head.link_sha256)
        fetched: dict[int, bytes | None] = {}
        while current is not None and current[0] >= seq:
            at, sha = current
            if at == seq:
                if sha == link_sha:
                    return
                break
            kept = self._known(writer, at)
            if kept is not None and kept.sha256 == sha and (writer, at) not in self._proven:
                # Kept in a file that walks its own rows (proven_links.KeptLinks): the run of
                # kept links below is followed in one query, not a step at a time here.
                reach = getattr(self._kept, "reach", None)
                reached = None if reach is None else reach(writer, at, sha, seq)
                if reached is not None and reached != current:
                    current = reached
                    continue
            if kept is None or kept.sha256 != sha:
                kept = await self._step(writer, at, sha, seq, fetched)
            current = None if kept.prev_seq is None else (kept.prev_seq, kept.prev_sha256 or "")
        raise _out(
            IntegrityKind.OUT_OF_CHAIN,
            f"link {seq} of writer {writer} is not on the chain walked back from its head "
            f"(link {head.seq}): a link beside the chain; not served (run archiver verify)",
        )

    async def _step(
        self, writer: str, at: int, sha: str, lowest: int, fetched: dict[int, bytes | None]
    ) -> _Proven:
        """Link ``at``, checked against the SHA-256 its successor (or the head) records."""
        if at not in fetched:
            # Read ahead: the links below ``at`` the walk will most likely need next.
            # Down to just above ``lowest``: the link proven was read by the proof itself.
            wanted = list(range(at, max(lowest, at - _READ_AHEAD), -1))
            wanted = [s for s in wanted if s == at or self._known(writer, s) is None]
            fetched |= await self._read_links(writer, wanted)
        raw = fetched.pop(at, None)  # the walk goes down: a link read is needed once
        if raw is None:
            raise _out(
                IntegrityKind.CUT,
                f"chain link {link_key(writer, at)} is missing: the chain of writer {writer} "
                "is cut; not served (run archiver verify)",
            )
        if sha256_hex(raw) != sha:
            raise _out(
                IntegrityKind.CORRUPT,
                f"chain link {link_key(writer, at)} was altered: its SHA-256 is not the one "
                "the chain records; not served (run archiver verify)",
            )
        try:
            link = Link.from_bytes(raw)
        except ValueError as exc:
            raise _out(IntegrityKind.CORRUPT, f"chain link {link_key(writer, at)}: {exc}") from None
        proven = _Proven(sha, link.prev_seq, link.prev_sha256)
        self._proven[(writer, at)] = proven
        self._added.add((writer, at))
        if len(self._added) >= self._backlog + KEEP_EVERY:
            await self._hand_over()
        return proven

    def _known(self, writer: str, seq: int) -> _Proven | None:
        """A link proven by this prover, else one kept (from an earlier walk)."""
        return self._proven.get((writer, seq)) or self._kept.get((writer, seq))

    def added(self) -> dict[tuple[str, int], ProvenLink]:
        """The links this prover proved itself (to keep for the next one)."""
        return {key: self._proven[key] for key in self._added}

    async def _read_links(self, writer: str, seqs: list[int]) -> dict[int, bytes | None]:
        semaphore = asyncio.Semaphore(_CONCURRENCY)

        async def one(seq: int) -> tuple[int, bytes | None]:
            async with semaphore:
                try:
                    return seq, await read_object(self._store, link_key(writer, seq))
                except KeyError:
                    return seq, None

        return dict(await asyncio.gather(*(one(seq) for seq in seqs)))

    async def _seal_links(self, *, again: bool = False) -> dict[str, tuple[str, int]]:
        """Legacy manifest key -> the seal link recording it (listed and read once, or
        ``again``)."""
        if self._sealed is None or again:
            keys = []
            async for obj in self._store.list(CHAIN_PREFIX + SEAL_WRITER_PREFIX):
                parsed = parse_chain_key(obj.key)
                if parsed is not None and parsed[1] is not None:
                    keys.append(obj.key)
            sealed: dict[str, tuple[str, int]] = {}
            for key in keys:
                try:
                    link = Link.from_bytes(await read_object(self._store, key))
                except (KeyError, ValueError):
                    continue  # verify reports a broken link; it proves nothing here
                sealed.setdefault(link.manifest_key, (link.writer, link.seq))
            self._sealed = sealed
        return self._sealed
