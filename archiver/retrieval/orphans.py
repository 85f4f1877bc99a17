"""Recordings no manifest line names: orphans.

A recording is stored before its line is written: the line waits in the
writer's batch at most ``ARCHIVER_MANIFEST_INTERVAL`` seconds. A recording
older than that plus a margin (``ARCHIVER_ORPHAN_MARGIN``) that no line
names is an orphan: its line was cut from the chain (a truncation), or a run
stopped between the upload and the line and has not run again. ``verify``
finds them from listing pages of the recordings' folder (about one request
per thousand recordings, no HEAD); ``get`` looks for the recording of an id
it cannot find, so a cut call is reported as cut (exit 5), not as never
archived.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

from archiver.errors import PlantedLinkError
from archiver.manifest.entry import ManifestEntry
from archiver.retrieval.errors import CallNotFoundError, IntegrityError, IntegrityKind
from archiver.retrieval.index import normalize_id
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.storage.base import ObjectStore, StoredObject
from archiver.storage.keys import sanitize
from archiver.storage.layout import ARCHIVER_PREFIX, MANIFEST_PREFIX


def recordings_prefix(template: str) -> str:
    """The folder every key of ``template`` starts with (``recordings/``; "" for none)."""
    literal = template.split("{", 1)[0]
    folder, slash, _ = literal.rpartition("/")
    return folder + "/" if slash else ""


@dataclass(frozen=True, slots=True)
class OrphanRule:
    """Where recordings are, and how old one with no line must be to be an orphan."""

    prefix: str
    bound: float  # seconds: the manifest flush interval plus the margin

    @classmethod
    def of(cls, key_template: str, manifest_interval: float, margin: float) -> OrphanRule:
        """The rule of these settings."""
        return cls(recordings_prefix(key_template), manifest_interval + margin)

    def is_recording(self, key: str) -> bool:
        """Whether a listed key can be a recording (not the archiver's own objects)."""
        return key.startswith(self.prefix) and not key.startswith(
            (MANIFEST_PREFIX, ARCHIVER_PREFIX)
        )

    def age(self, obj: StoredObject, now: datetime) -> float | None:
        """Seconds since ``obj`` was stored, or None when the storage did not say."""
        if obj.modified is None:
            return None
        return max(0.0, (now - obj.modified).total_seconds())

    def describe(self, obj: StoredObject, age: float | None) -> str:
        """Why an orphan is one (for a report line or an error)."""
        stored = "at an unknown time" if age is None else f"{age:.0f} s ago"
        return (
            f"no manifest line names this recording, stored {stored} (lines are written "
            f"within {self.bound:.0f} s): its line was cut from the chain, or a run stopped "
            "before writing it (reconcile --fix re-proves it and writes its line)"
        )


def _key_hash(key: str) -> int:
    # Signed: SQLite's INTEGER is a signed 64-bit number.
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


@dataclass
class OrphanScan:
    """``verify``: the recordings the lines read name; then every listed one that none does.

    Only a 64-bit hash of each named key is kept, in a table of ``db`` (the
    command's scratch file, :mod:`archiver.retrieval.scratch`; in memory when
    none is given), so memory does not grow with the archive: a collision
    could only hide an orphan, never report a false one.
    """

    rule: OrphanRule
    db: sqlite3.Connection = field(default_factory=lambda: sqlite3.connect(":memory:"))
    listed: int = 0
    waiting: int = 0  # recordings with no line yet, younger than the bound

    def __post_init__(self) -> None:
        self.db.execute("CREATE TABLE named (h INTEGER PRIMARY KEY) WITHOUT ROWID")

    def add(self, store: ObjectStore, call: ManifestEntry) -> None:
        """A line read names its recording."""
        try:
            key = store.relative_key(call.object_key)
        except PlantedLinkError:
            key = call.object_key  # a local key (verify reports its SYMLINK)
        except ValueError:
            return  # not a key of this storage: verify reports the line as MISSING
        self.db.execute("INSERT OR IGNORE INTO named VALUES (?)", (_key_hash(key),))

    def _named(self, key: str) -> bool:
        row = self.db.execute("SELECT 1 FROM named WHERE h = ?", (_key_hash(key),)).fetchone()
        return row is not None

    async def problems(self, store: ObjectStore, now: datetime | None = None) -> list[Problem]:
        """ORPHAN for each recording older than the bound that no line named."""
        now = now or datetime.now(UTC)
        found = []
        async for obj in store.list(self.rule.prefix):
            if not self.rule.is_recording(obj.key):
                continue
            self.listed += 1
            if self._named(obj.key):
                continue
            age = self.rule.age(obj, now)
            if age is not None and age <= self.rule.bound:
                self.waiting += 1  # its line may still be in its writer's batch
                continue
            found.append(Problem(ProblemKind.ORPHAN, obj.key, self.rule.describe(obj, age)))
        return found


def names_id(key: str, ident: str) -> bool:
    """Whether the recording key carries ``ident`` (sanitized) as its file name's stem or
    as a folder (pure)."""
    wanted = sanitize(normalize_id(ident))
    path = PurePosixPath(key)
    return path.stem == wanted or wanted in path.parts[:-1]


async def no_recording_without_line(store: ObjectStore, ident: str, rule: OrphanRule) -> None:
    """Raise when a recording of ``ident`` is stored though no line names the call.

    IntegrityError (CUT) once it is older than the bound; CallNotFoundError
    saying the line is not written yet when younger. Returns if there is none.
    One listing of the recordings' folder (a lookup that found nothing).
    """
    if not normalize_id(ident):
        return
    now = datetime.now(UTC)
    async for obj in store.list(rule.prefix):
        if not rule.is_recording(obj.key) or not names_id(obj.key, ident):
            continue
        age = rule.age(obj, now)
        if age is not None and age <= rule.bound:
            raise CallNotFoundError(
                f"no manifest line names {ident!r} yet: its recording {obj.full_key} was "
                f"stored {age:.0f} s ago and its line is written within {rule.bound:.0f} s; "
                "try again shortly"
            )
        raise IntegrityError(
            IntegrityKind.CUT,
            f"no proven manifest line names {ident!r}, but its recording {obj.full_key} is in "
            f"the storage: {rule.describe(obj, age)}; run archiver verify",
        )
