"""``reconcile --fix`` for a call the state believes archived but no manifest line names.

The pipeline does not archive such a call again (its job is done), so
``--fix`` used to announce it and do nothing. Here the line the state kept
(its SHA-256, size and the storage's proof at write time) is held to the
stored object first, exactly as ``verify`` checks it (the storage's checksum
and ETag, else the bytes read back and hashed): an object missing or not the
one archived is not re-lined, and the reason is given. The lines re-proven
are written again, one manifest object per date partition, under a new chain
of their own (writer ``repair-<random>``, like ``archiver seal``): nothing
written before is rewritten, and ``verify`` proves the new objects like any.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo

from archiver.manifest.entry import ManifestEntry
from archiver.manifest.writer import append_chained
from archiver.retrieval.verify import VerifyReport, check_entry
from archiver.storage.base import ObjectStore
from archiver.storage.layout import (
    manifest_key,
)

REPAIR_WRITER_PREFIX = "repair-"


@dataclass
class Repaired:
    """What a repair did: lines written again (by manifest key), lines refused (with why)."""

    writer: str | None = None
    written: dict[str, list[ManifestEntry]] = field(default_factory=dict)
    refused: list[tuple[ManifestEntry, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Lines written again."""
        return sum(len(lines) for lines in self.written.values())


def line_of(text: str) -> ManifestEntry:
    """The state's kept line as a manifest entry; ValueError if it is not one."""
    return ManifestEntry.from_line(json.loads(text), None)


async def repair_lines(store: ObjectStore, lines: Sequence[ManifestEntry], tz: tzinfo) -> Repaired:
    """Re-prove each line's stored object, then write the proven lines again (chained)."""
    done = Repaired()
    proven: dict[str, list[ManifestEntry]] = {}
    for line in lines:
        problem = await check_entry(store, line, False, VerifyReport())
        if problem is not None:
            done.refused.append((line, f"{problem.kind.value}: {problem.detail}"))
            continue
        started = line.call_started_at
        day = started.astimezone(tz).date().isoformat() if started else "unknown"
        proven.setdefault(day, []).append(line)
    if not proven:
        return done
    writer = f"{REPAIR_WRITER_PREFIX}{secrets.token_hex(6)}"
    previous: tuple[int, str] | None = None
    for seq, (day, entries) in enumerate(sorted(proven.items()), start=1):
        key = manifest_key(day, seq, writer)
        content = "".join(entry.to_line() + "\n" for entry in entries).encode()
        previous = await append_chained(store, writer, seq, key, content, len(entries), previous)
        done.written[key] = entries
    done.writer = writer
    return done
