"""What ``verify`` can find wrong, one value per kind (a leaf module)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from archiver.manifest.chain import Link, sha256_hex
from archiver.manifest.entry import ManifestEntry


class ProblemKind(StrEnum):
    """What is wrong; the report line starts with the value in capitals."""

    MISSING = "missing"  # no object at the manifest's key (or its recorded version)
    ALTERED = "altered"  # the object is not the one the storage proved at write time
    CORRUPT = "corrupt"  # the object's bytes are proven not to be the manifest's SHA-256
    UNPROVEN = "unproven"  # no server-side proof, and not re-hashed (--no-rehash)
    BAD_LINE = "bad-line"  # a manifest line that cannot be read
    MANIFEST_MISSING = "manifest-missing"  # a chained manifest object is gone
    MANIFEST_HIDDEN = "manifest-hidden"  # ... behind a delete marker (its versions remain)
    MANIFEST_ALTERED = "manifest-altered"  # its bytes are not the ones its link records
    OUT_OF_CHAIN = "out-of-chain"  # a manifest object with proof lines but no link
    CHAIN_BROKEN = "chain-broken"  # a link or head missing, unreadable or not linking
    INDEX = "index"  # an id-index pointer that does not match the manifest
    DUPLICATE = "duplicate"  # a second call line of one call (provider, cdr id)
    SUPERSEDE = "supersede"  # a supersede record that names no duplicate of its call
    SYMLINK = "symlink"  # a local folder on the way to the object is a symbolic link
    ORPHAN = "orphan"  # a stored recording no manifest line names (older than the flush bound)
    TIMESTAMP = "timestamp"  # a link's trusted timestamp missing after the first, or invalid
    CHAIN_REWRITTEN = "chain-rewritten"  # the chain does not extend a witnessed checkpoint,
    # or its version history shows a link, head or manifest object rewritten or removed
    WITNESS = "witness"  # a witnessed checkpoint that does not verify, or two inconsistent ones
    UNREGISTERED = "unregistered-writer"  # a writer no witness key registered
    ROLLUP = "rollup"  # a rollup whose parts disagree with each other or with the chain


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, named by its key (object, manifest object, link or pointer)."""

    kind: ProblemKind
    where: str  # the object key, or "manifest-key line N"
    detail: str
    call: ManifestEntry | None = None

    def line(self) -> str:
        """One line for the report: kind, key, the call's ids, what is wrong."""
        ident = f" {self.call.describe()}" if self.call else ""
        return f"{self.kind.value.upper()} {self.where}{ident}: {self.detail}"


def records_against_link(
    key: str, content: bytes, link: Link | None, kind: str, records: str
) -> Problem | None:
    """A chained record object (``kind``: "supersede record", "tombstone") against the link
    recording it (pure); None when it matches. ``records`` names what is not applied."""
    if link is None:
        return Problem(
            ProblemKind.OUT_OF_CHAIN,
            key,
            f"no chain link records this {kind} object: its {records} are not applied",
        )
    sha = sha256_hex(content)
    if (sha, len(content)) != (link.manifest_sha256, link.manifest_size):
        return Problem(
            ProblemKind.MANIFEST_ALTERED,
            key,
            f"{len(content)} bytes with SHA-256 {sha}; link {link.key} records "
            f"{link.manifest_size} bytes with SHA-256 {link.manifest_sha256}: "
            f"its {records} are not applied",
        )
    return None
