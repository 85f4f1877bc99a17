"""The manifest chain: each manifest object linked, by its SHA-256, to the writer's previous one.

A *writer* is one state store (its id is kept there); its manifest objects are
numbered by their batch number ``seq``. For each one the writer stores a
*link*, written once like the manifest itself::

    {"format": 1, "writer": W, "seq": n, "manifest_key": K, "manifest_sha256": H,
     "manifest_size": S, "lines": L, "prev_seq": m, "prev_sha256": sha256(link m)}

and moves its *head* (``_archiver/chain/<W>/head.json``: the latest link's
number and SHA-256) forward. The links form a hash chain: altering or removing
any manifest object or link breaks it at that point, and the head tells where
it must end, so removing the newest objects shows too.

The manifest lines stay plain JSON Lines, one call per line: the chain lives
beside them, so DuckDB and Athena read the manifests as before.

A link's bytes are fixed in the state store together with its batch, before
anything is written (see :mod:`archiver.state.batches`): a crash at any point
is finished by rewriting the identical objects. A trusted timestamp (RFC 3161)
of a link goes beside it as ``<seq>.tsr``, over the SHA-256 in the head.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import asdict, dataclass
from typing import Any

from archiver.storage.layout import WRITER_ID, link_key

CHAIN_FORMAT = 1


def canonical_json(body: dict[str, Any]) -> bytes:
    """Canonical JSON bytes (sorted keys, compact): the same body gives the same bytes."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


_DECODER = json.JSONDecoder()
_NOT_SPACE = re.compile(r"[^ \t\n\r]")


def json_bytes(data: bytes) -> Any:
    """``json.loads(data)``, quicker for what starts with ``{`` (a link, an entries line:
    thousands per rollup): read as UTF-8 straight away, as json.loads reads it when
    the second byte is not NUL, without its other checks. Raises what it raises."""
    if data[:1] != b"{" or data[1:2] == b"\0":
        return json.loads(data)
    text = data.decode("utf-8", "surrogatepass")
    body, end = _DECODER.raw_decode(text)
    if end != len(text) and _NOT_SPACE.search(text, end) is not None:
        return json.loads(data)  # what follows the object: json.loads says what is wrong
    return body


def _loads(data: bytes, what: str) -> dict[str, Any]:
    try:
        body = json_bytes(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{what} is not JSON") from None
    if not isinstance(body, dict) or body.get("format") != CHAIN_FORMAT:
        raise ValueError(f"{what} is not a chain {what} (format {CHAIN_FORMAT})")
    return body


#: The largest seq, size or count a link may hold: SQLite's INTEGER (verify keeps the
#: links it checks in a SQLite file; no writer comes near it).
MAX_COUNT = 2**63 - 1


def field_count(body: dict[str, Any], name: str, *, optional: bool = False) -> int | None:
    """``body[name]`` as a count (an int >= 0, not a bool); ValueError otherwise."""
    value = body.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} is not a number")
    return value


def field_text(body: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    """``body[name]`` as a non-empty string; ValueError otherwise."""
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} is not a string")
    return value


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Link:
    """One manifest object's place in its writer's chain."""

    writer: str
    seq: int
    manifest_key: str
    manifest_sha256: str
    manifest_size: int
    lines: int
    prev_seq: int | None  # None: the first link of the chain
    prev_sha256: str | None

    @property
    def key(self) -> str:
        """Where this link is stored."""
        return link_key(self.writer, self.seq)

    def to_bytes(self) -> bytes:
        """The link object's bytes (canonical JSON: the same link gives the same bytes)."""
        return canonical_json({"format": CHAIN_FORMAT, **asdict(self)})

    @classmethod
    def from_bytes(cls, data: bytes) -> Link:
        """Parse a link object; ValueError if it is not one."""
        body = _loads(data, "link")
        writer = field_text(body, "writer")
        assert writer is not None
        if not WRITER_ID.fullmatch(writer):
            raise ValueError("writer is not a writer id")
        prev_seq = field_count(body, "prev_seq", optional=True)
        prev_sha = field_text(body, "prev_sha256", optional=True)
        if (prev_seq is None) != (prev_sha is None):
            raise ValueError("prev_seq and prev_sha256 go together")
        link = cls(
            # One string per writer, not one per link (a verify holds every link).
            writer=sys.intern(writer),
            seq=field_count(body, "seq") or 0,
            manifest_key=field_text(body, "manifest_key") or "",
            manifest_sha256=field_text(body, "manifest_sha256") or "",
            manifest_size=field_count(body, "manifest_size") or 0,
            lines=field_count(body, "lines") or 0,
            prev_seq=prev_seq,
            prev_sha256=prev_sha,
        )
        for name in ("seq", "manifest_size", "lines", "prev_seq"):
            if (getattr(link, name) or 0) > MAX_COUNT:
                raise ValueError(f"{name} is larger than any link's")
        return link


def next_link(
    writer: str,
    seq: int,
    manifest_key: str,
    content: bytes,
    lines: int,
    previous: tuple[int, str] | None,
) -> Link:
    """The link of a new manifest object after ``previous`` (seq, link SHA-256), or first."""
    return Link(
        writer=writer,
        seq=seq,
        manifest_key=manifest_key,
        manifest_sha256=sha256_hex(content),
        manifest_size=len(content),
        lines=lines,
        prev_seq=previous[0] if previous else None,
        prev_sha256=previous[1] if previous else None,
    )


@dataclass(frozen=True, slots=True)
class Head:
    """A writer's latest link: where its chain must end at least."""

    writer: str
    seq: int
    link_sha256: str  # what a trusted timestamp of the head covers

    def to_bytes(self) -> bytes:
        """The head object's bytes."""
        return canonical_json({"format": CHAIN_FORMAT, **asdict(self)})

    @classmethod
    def from_bytes(cls, data: bytes) -> Head:
        """Parse a head object; ValueError if it is not one."""
        body = _loads(data, "head")
        return cls(
            writer=field_text(body, "writer") or "",
            seq=field_count(body, "seq") or 0,
            link_sha256=field_text(body, "link_sha256") or "",
        )

    @classmethod
    def of(cls, link_bytes: bytes) -> Head:
        """The head naming the link ``link_bytes``."""
        link = Link.from_bytes(link_bytes)
        return cls(link.writer, link.seq, sha256_hex(link_bytes))
