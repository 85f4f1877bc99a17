"""A checkpoint of the manifest chain, and the check that a chain extends it (pure).

A checkpoint is a C2SP checkpoint note (c2sp.org/tlog-checkpoint) of the whole
archive: every writer's head at one moment::

    <origin>                       the archive (its storage URL)
    <size>                         the sum of the writers' head numbers (grows only)
    <base64 root>                  SHA-256 of the extension lines below
    <writer> <seq> <sha256 hex>    one line per writer: its head link and that link's SHA-256

The chain is a hash chain, not a Merkle tree: "consistent" means each writer's
current chain, walked back from its head, passes through the checkpoint's link
with the same SHA-256. A witness (``archiver witness checkpoint``) cosigns a new
checkpoint only after checking that, so it never signs two inconsistent ones;
``verify --witness`` checks the current chain against every witnessed one.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from archiver.witness.note import NoteError

_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass
class ChainState:
    """Every writer's chain as verify walked it: the head, and the links the walk reached."""

    heads: dict[str, tuple[int, str]] = field(default_factory=dict)  # writer -> (seq, link SHA)
    # writer -> seq -> link SHA; a full verify's are read-only, on its scratch file
    # (archiver.retrieval.chain_walk.WalkTable): read them, do not copy them.
    walks: dict[str, Mapping[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint says: each writer's head (seq, link SHA-256)."""

    origin: str
    heads: Mapping[str, tuple[int, str]]
    signed_at: datetime | None = None  # when the witness cosigned it (None: not signed yet)
    name: str = ""  # where it was read from

    @property
    def size(self) -> int:
        """The sum of the head numbers."""
        return sum(seq for seq, _ in self.heads.values())

    def _extension(self) -> str:
        return "".join(f"{w} {seq} {sha}\n" for w, (seq, sha) in sorted(self.heads.items()))

    def text(self) -> str:
        """The note text (unsigned)."""
        extension = self._extension()
        root = base64.b64encode(hashlib.sha256(extension.encode()).digest()).decode()
        return f"{self.origin}\n{self.size}\n{root}\n{extension}"

    @classmethod
    def of(cls, origin: str, chains: ChainState) -> Checkpoint:
        """The checkpoint of the chains as they are."""
        if not origin or any(c.isspace() for c in origin):
            raise NoteError(f"a checkpoint origin has no spaces: {origin!r}")
        return cls(origin, dict(chains.heads))

    @classmethod
    def parse(cls, text: str, signed_at: datetime | None = None, name: str = "") -> Checkpoint:
        """Read a checkpoint's (verified) note text; NoteError if it is not one."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("not an archiver checkpoint (origin, size, root, writer lines)")
        origin, size, root = lines[:3]
        heads: dict[str, tuple[int, str]] = {}
        for line in lines[3:-1]:
            parts = line.split(" ")
            if len(parts) != 3 or not parts[1].isdigit() or not _HEX.fullmatch(parts[2]):
                raise NoteError(f"not an archiver checkpoint line: {line[:80]!r}")
            if parts[0] in heads:
                raise NoteError(f"writer {parts[0]} twice in one checkpoint")
            heads[parts[0]] = (int(parts[1]), parts[2])
        found = cls(origin, heads, signed_at, name)
        if found.text() != text or str(found.size) != size:
            raise NoteError("the checkpoint's size or root does not match its writer lines")
        del root  # checked through text(): the root is recomputed from the lines
        return found


@dataclass(frozen=True)
class Inconsistency:
    """Where the chain does not extend a checkpoint."""

    writer: str
    seq: int
    detail: str


def inconsistencies(checkpoint: Checkpoint, chains: ChainState) -> list[Inconsistency]:
    """Each writer of ``checkpoint`` whose current chain does not pass through its link."""
    found = []
    when = checkpoint.signed_at.isoformat() if checkpoint.signed_at else "unsigned"
    source = f"the checkpoint {checkpoint.name or ''} witnessed at {when}".replace("  ", " ")
    for writer, (seq, sha) in sorted(checkpoint.heads.items()):
        walk = chains.walks.get(writer)
        head = chains.heads.get(writer)
        if walk is None or head is None:
            found.append(
                Inconsistency(
                    writer, seq, f"the whole chain is gone; {source} records link {seq} ({sha})"
                )
            )
        elif seq not in walk:
            if head[0] < seq:
                what = f"truncated: the head is at link {head[0]}, {source} records link {seq}"
            else:
                what = f"rewritten: link {seq} is not on the chain walked back from the head; "
                what += f"{source} records it"
            found.append(Inconsistency(writer, seq, f"{what} (SHA-256 {sha})"))
        elif walk[seq] != sha:
            found.append(
                Inconsistency(
                    writer,
                    seq,
                    f"rewritten: link {seq} has SHA-256 {walk[seq]}, {source} records {sha}",
                )
            )
    return found


def conflicts(older: Checkpoint, newer: Checkpoint) -> list[Inconsistency]:
    """Two checkpoints that cannot both be true of one append-only chain (same link, other
    SHA-256; a writer gone or moved back). Only the links both name can be compared."""
    found = []
    for writer, (seq, sha) in sorted(older.heads.items()):
        later = newer.heads.get(writer)
        if later is None:
            found.append(Inconsistency(writer, seq, f"{newer.name} lost writer {writer}"))
        elif later[0] < seq:
            found.append(Inconsistency(writer, seq, f"{newer.name} moved its head back"))
        elif later[0] == seq and later[1] != sha:
            found.append(Inconsistency(writer, seq, f"{newer.name} names other bytes"))
    return found
