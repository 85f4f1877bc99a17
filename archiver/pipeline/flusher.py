"""When the manifest is written: soon after a line waits while idle, in big
batches while busy.

A line waits at most ``interval`` seconds for its manifest object: the timer
starts at the first line archived since the last flush (not on a fixed beat),
and a full batch (``max_lines``) is written at once. With nothing archived no
object is written, so an idle day costs no manifest objects, and a busy one
writes full batches. At 10,000 calls a day over a 10-hour working day (one
every 3.6 s) and the default 10 s, that is about 2,600 objects a day of about
4 lines; ``ARCHIVER_MANIFEST_INTERVAL=60`` makes it at most 600 in those hours.

Several processes on one state write one manifest chain, one at a time: each
flush runs under the role :data:`~archiver.pipeline.role_keeper.MANIFEST`, and a
process that cannot have it leaves its lines to the holder's next flush (or to
its own final flush). The ``run`` leader's flusher watches the others' lines
too: it flushes every interval whether or not it archived anything itself
(with nothing to write, two reads of the state and no object).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from archiver.errors import ArchiverError
from archiver.manifest.writer import HeadHook, flush_manifest
from archiver.pipeline.adoption import ArchiveGuard
from archiver.pipeline.role_keeper import LEADER, MANIFEST, RoleKeeper
from archiver.state.protocols import Batches
from archiver.storage.base import ObjectStore

log = logging.getLogger("archiver.pipeline")


class ManifestFlusher:
    """Writes the manifest batches the state holds, on the timing above."""

    def __init__(
        self,
        batches: Batches,
        store: ObjectStore,
        *,
        interval: float,
        max_lines: int,
        written: Callable[[int], None],
        on_head: HeadHook | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        roles: RoleKeeper | None = None,
        guard: ArchiveGuard | None = None,
        rollup: tuple[int, float] = (0, 0.0),
    ) -> None:
        self.batches = batches
        self.store = store
        self.interval = interval
        self.max_lines = max_lines
        self._written = written
        self._on_head = on_head
        # How an interval passes: the tests pass time that moves only when they say.
        self._sleep = sleep
        # None: this process is the only writer (no role is taken).
        self._roles = roles
        # Asks the archive, just before a batch is cut, whether its calls have a line.
        self._guard = guard
        # The run leader: flush every interval, for the lines other replicas archive.
        self.watch_others = False
        self._waiting = 0  # lines archived since the last flush started
        self._first = asyncio.Event()
        self._full = asyncio.Event()
        # The run leader's rollups (archiver.pipeline.rollups): after this many objects
        # written, or this many seconds (0: never); it counts the objects written here.
        self.rollup = rollup
        self.objects_written = 0
        self.object_written = asyncio.Event()

    def line_added(self) -> None:
        """One more recording archived: its line waits for the next flush."""
        self._waiting += 1
        self._first.set()
        if self._waiting >= self.max_lines:
            self._full.set()

    async def flush(self) -> bool:
        """Write every unwritten batch now, under the manifest role; False when
        another process holds it (its flushes write these lines)."""
        if self._roles is None:
            await self._flush()
            return True
        if not await self._roles.take(MANIFEST):
            log.debug("manifest: another process is writing it")
            return False
        # Cancelled (a hard stop, or the leader role lost), the role is kept to its
        # end: a write under way may still land, and no other writer starts before.
        return await self._roles.hold_while(MANIFEST, self._flush(), release_if_cancelled=False)

    async def flush_last(self) -> None:
        """The end of a run: write its lines, waiting (a bounded time) for the role
        while another process writes, unless a live ``run`` leader will write them."""
        if self._roles is None:
            await self._flush()
            return
        roles = self._roles
        deadline = asyncio.get_running_loop().time() + 2 * roles.lease.total_seconds()
        while not await self.flush():
            leader = await roles.holder(LEADER)
            if leader is not None and leader != roles.owner:
                log.info("manifest lines left to the run leader %s, which writes them", leader)
                return
            if asyncio.get_running_loop().time() > deadline:
                log.warning(
                    "manifest not written: %s is writing it; the next run writes these lines",
                    await roles.holder(MANIFEST),
                )
                return
            await asyncio.sleep(min(roles.renew_every, 1.0))

    async def _flush(self) -> None:
        guard = self._guard
        if guard is not None:
            adopted = await guard.before_cut()
            self._waiting = max(self._waiting - adopted, 0)
        self._written(
            await flush_manifest(
                self.batches,
                self.store,
                self.max_lines,
                on_head=self._on_head,
                on_written=self._object_written,
            )
        )

    async def _object_written(self, key: str, content: bytes) -> None:
        self.objects_written += 1
        self.object_written.set()
        if self._guard is not None:
            await self._guard.wrote(key, content)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush on the timing above until ``stop`` (between two flushes, never in the
        middle of one: the final flush follows); errors other than ArchiverError end it."""
        failed = False
        while not stop.is_set():
            if not failed and not self.watch_others:
                await _first_of(stop, self._first)
            # After a failed flush the batches wait in the state: try again after an interval.
            await _first_of(stop, self._full, self._sleep(self.interval))
            if stop.is_set():
                return
            self._first.clear()
            self._full.clear()
            self._waiting = 0
            try:
                await self.flush()
                failed = False
            except ArchiverError as exc:
                log.warning("manifest not written yet: %s", exc)
                failed = True


async def _first_of(*waits: asyncio.Event | Awaitable[None]) -> None:
    """Returns once any of ``waits`` is over: an event set, or a sleep slept."""
    tasks = [asyncio.ensure_future(w.wait() if isinstance(w, asyncio.Event) else w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
