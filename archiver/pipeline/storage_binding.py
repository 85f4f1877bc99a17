"""One state per storage: an archiver with another state database refuses to start.

Processes sharing one state share its work safely (each claimed job is leased
to one process). Processes with *separate* states on one storage cannot: each
state would batch the same recordings into manifest lines of its own, and a
recording would be in the manifest twice. So every running pipeline keeps a
marker in the storage, renewed by its heartbeat and found by a LIST alone::

    _archiver/running/<state_id>.<owner>.<started_ms>.<expires_ms>.json

(``<owner>``: :func:`archiver.pipeline.owner_tokens.owner_token`.)
A pipeline starting while a marker of another state is live (not expired)
refuses with one line (exit 2); the marker of a process of this machine that
has ended counts for nothing. Two starting at the same moment both write
their marker, then look again: one that sees the other's withdraws and
refuses, so at most one goes on. A marker outlives a killed process by
at most the lease (``ARCHIVER_LEASE``); clocks of the machines are assumed to
agree within a small part of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from archiver.errors import ArchiverError, ConfigError, StorageError
from archiver.pipeline.owner_tokens import holder_is_gone
from archiver.storage.base import ObjectStore

log = logging.getLogger("archiver.pipeline")

PREFIX = "_archiver/running/"
MARKER_ATTEMPTS = 3


@dataclass(frozen=True, slots=True, order=True)
class Marker:
    """One process's marker, as its key spells it (sorted: who started first)."""

    started_ms: int
    state_id: str
    owner: str
    expires_ms: int

    @property
    def key(self) -> str:
        """The marker's object key."""
        return f"{PREFIX}{self.state_id}.{self.owner}.{self.started_ms}.{self.expires_ms}.json"

    @classmethod
    def parse(cls, key: str) -> Marker | None:
        """The marker a key names, or None for anything else under the prefix."""
        name = key.removeprefix(PREFIX).removesuffix(".json")
        parts = name.split(".")
        if len(parts) != 4 or not parts[2].isdigit() or not parts[3].isdigit():
            return None
        return cls(int(parts[2]), parts[0], parts[1], int(parts[3]))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class StorageBinding:
    """The marker of one pipeline run: :meth:`acquire`, :meth:`renew`, :meth:`release`."""

    def __init__(self, store: ObjectStore, state_id: str, owner: str, lease: timedelta) -> None:
        self._store = store
        self._state_id = state_id
        self._owner = owner
        self._lease = lease
        self._mine: Marker | None = None
        self.peers: list[Marker] = []

    async def acquire(self, now: datetime) -> None:
        """Write this run's marker; ConfigError if another state's process is at work.

        Afterwards :attr:`peers` lists the other processes at work on the storage.
        """
        self._refuse_if_taken(await self._others(now), now)
        await self._write(Marker(_ms(now), self._state_id, self._owner, _ms(now + self._lease)))
        # Starting at the same moment as another state, both got past the first
        # look. Whoever now sees the other's marker yields: the one that looked
        # last surely sees the other's (still there), so at most one goes on.
        # (Both may yield, and both say so: a retry then finds the way free.)
        self.peers = await self._others(now)
        if any(m.state_id != self._state_id for m in self.peers):
            await self.release()
            self._refuse_if_taken(self.peers, now)

    async def renew(self, now: datetime) -> None:
        """The heartbeat: a marker with a later expiry replaces the current one."""
        old = self._mine
        if old is None:
            return
        await self._write(
            Marker(old.started_ms, self._state_id, self._owner, _ms(now + self._lease))
        )
        await self._store.delete(old.key)

    async def release(self) -> None:
        """Remove this run's marker (at its end); safe to call twice."""
        mine, self._mine = self._mine, None
        if mine is not None:
            await self._store.delete(mine.key)

    async def _write(self, marker: Marker) -> Marker:
        body = json.dumps(
            {
                "state_id": marker.state_id,
                "owner": marker.owner,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "expires_at": datetime.fromtimestamp(marker.expires_ms / 1000, UTC).isoformat(),
            }
        ).encode()
        digest = hashlib.sha256(body).hexdigest()
        for attempt in range(1, MARKER_ATTEMPTS + 1):
            try:
                await self._store.put_bytes(
                    marker.key, body, sha256=digest, content_type="application/json"
                )
                break
            except StorageError:
                # Two processes starting at once may each list before the other's marker
                # is there, and a local store's crash clean-up of the one that thinks it
                # is alone removes the other's temporary file mid-write. The write is the
                # same bytes again (a second one finds them present), so it is tried again.
                if attempt == MARKER_ATTEMPTS:
                    raise
        self._mine = marker
        return marker

    async def _others(self, now: datetime) -> list[Marker]:
        """Markers of other processes at work; those of ended ones are removed."""
        live: list[Marker] = []
        async for obj in self._store.list(PREFIX):
            marker = Marker.parse(obj.key)
            if marker is None or marker.owner == self._owner:
                continue
            if marker.expires_ms > _ms(now) and not holder_is_gone(marker.owner):
                live.append(marker)
            else:
                # Its process ended (or died long enough ago): tidy up; another
                # process may race us to it.
                with contextlib.suppress(ArchiverError):
                    await self._store.delete(obj.key)
        return sorted(live)

    def _refuse_if_taken(self, others: list[Marker], now: datetime) -> None:
        others = [m for m in others if m.state_id != self._state_id]
        if not others:
            return
        other = others[0]
        left = max((other.expires_ms - _ms(now)) / 1000, 0)
        raise ConfigError(
            f"{self._store.description} is being archived by another archiver with a "
            f"different state database (state {other.state_id[:12]}, process {other.owner}); "
            "two states on one storage would write each recording to the manifest twice: "
            f"share that state (ARCHIVER_STATE__URL) or wait until it stops (its marker "
            f"lapses within {left:.0f}s of its end)"
        )
