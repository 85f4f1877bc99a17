"""The object-store boundary: all the pipeline and retrieval know of storage.

Two implementations: S3 (aiobotocore) and a local directory (aiofiles).
Keys are relative to the storage root: an S3 implementation adds its prefix
itself, and reports keys *with* the prefix only in ``StoredObject.full_key``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

# A write's optional extras, named so that every store's signature stays on one line.
Meta = Mapping[str, str] | None
LockDate = datetime | None


class PutOutcome(StrEnum):
    """What a write did."""

    CREATED = "created"
    # An object with the same SHA-256 was already under that key: nothing written.
    ALREADY_PRESENT = "already_present"


@dataclass(frozen=True, slots=True)
class ObjectProof:
    """What the storage itself says about an object it stored: evidence of its bytes.

    Every value is the server's own (never client-set metadata). ``etag`` is
    the ETag without quotes; ``checksum_sha256`` the base64 ``ChecksumSHA256``
    the server verified on upload: the whole object's SHA-256 (type
    FULL_OBJECT), or for a multipart upload the SHA-256 of its parts'
    SHA-256s followed by ``-N`` (type COMPOSITE). A local file has none.
    """

    etag: str | None = None
    version_id: str | None = None
    checksum_sha256: str | None = None
    checksum_type: str | None = None

    @property
    def proves_bytes(self) -> bool:
        """True when a server-verified SHA-256 checksum pins the bytes."""
        return self.checksum_sha256 is not None

    def differences(self, other: ObjectProof) -> list[str]:
        """The recorded values ``other`` (what the storage says now) does not match (pure).

        ``version_id`` is left out: a versioned bucket's current object is
        compared to the recorded version by the caller.
        """
        diffs = []
        for name in ("etag", "checksum_sha256"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and mine != theirs:
                diffs.append(f"{name} {theirs or 'none'}, recorded {mine}")
        return diffs


@dataclass(frozen=True, slots=True)
class Written:
    """What a write did, and the storage's proof of the object now under the key."""

    outcome: PutOutcome
    proof: ObjectProof = ObjectProof()


@dataclass(frozen=True, slots=True)
class Tagged:
    """A small object's bytes and the storage's tag for this very content.

    The tag is what :meth:`ObjectStore.replace_bytes` compares before it
    writes: S3's ETag, a local file's SHA-256.
    """

    data: bytes
    tag: str


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What the storage says about one object."""

    key: str  # relative to the storage root
    full_key: str  # as the user sees it: bucket key with prefix (S3), relative path (local)
    size: int
    # Hex SHA-256 of the whole object when the storage computed and verified one
    # (S3 single-part uploads with a SHA-256 checksum); None otherwise. Client-set
    # metadata never counts.
    sha256: str | None = None
    content_type: str | None = None
    proof: ObjectProof = ObjectProof()
    # When it was stored (a listing's LastModified, a file's mtime); None when not known.
    modified: datetime | None = None


class ObjectExistsError(Exception):
    """A different object (another SHA-256) is already under the key; nothing was written."""

    def __init__(self, key: str, existing_sha256: str | None) -> None:
        super().__init__(f"object {key} already exists with different content")
        self.key = key
        self.existing_sha256 = existing_sha256


class Upload(Protocol):
    """A write too large to buffer, sent part by part; invisible until ``complete``."""

    async def write_part(self, data: bytes) -> None:
        """Send one part (every part but the last at least 5 MiB)."""

    async def complete(self, sha256: str, size: int) -> Written:
        """Make the object visible, only if absent (or present with this SHA-256).

        Raises ObjectExistsError (after aborting) if a different object is there.
        """

    async def abort(self) -> None:
        """Throw the parts away; safe to call twice or after a failed complete."""


class ObjectStore(Protocol):
    """The storage a recording, a manifest or an index goes to."""

    @property
    def description(self) -> str:
        """Where this is, for messages: ``s3://bucket/prefix`` or a directory."""

    def full_key(self, key: str) -> str:
        """The key as the user sees it: with the S3 prefix, or the relative path (local)."""

    def relative_key(self, full_key: str) -> str:
        """The inverse of :meth:`full_key` (a manifest's ``object_key`` back to a key).

        Raises ValueError if ``full_key`` is not under this storage's root or prefix.
        """

    async def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        retain_until: datetime | None = None,
    ) -> Written:
        """Write a whole object in one request, only if absent (conditional write).

        ``sha256`` (hex) is the caller's digest of ``data``; the storage checks it
        (S3: ``x-amz-checksum-sha256``). An object already there with the same
        SHA-256 gives ALREADY_PRESENT; with another, ObjectExistsError.
        ``retain_until``: a recording's Object Lock date from its retention rule
        (where the settings ask for a lock mode), instead of the default span.
        """

    async def read_tagged(self, key: str) -> Tagged | None:
        """A small object's bytes and tag (only the chain heads), or None if absent."""

    async def replace_bytes(
        self, key: str, data: bytes, *, content_type: str, expected: str | None
    ) -> bool:
        """Write a small object over the one :meth:`read_tagged` returned (only the chain heads).

        Compare-and-swap, safe between processes: the write happens only if
        the object under ``key`` still has the tag ``expected`` (``None``: only
        if there is none). False when another writer changed it meanwhile:
        nothing was written; read it again and decide. S3: ``If-Match`` /
        ``If-None-Match: *``; a directory: compare, then rename, under a lock
        file. A versioned bucket keeps the previous content as an older version.
        """

    async def start_upload(
        self,
        key: str,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        retain_until: datetime | None = None,
    ) -> Upload:
        """Begin a multipart upload (S3) or a hidden temporary file (local)."""

    async def head(self, key: str) -> StoredObject | None:
        """The object's size, checksum and proof (S3: its current version), or None if absent."""

    def read(
        self, key: str, chunk_size: int = 1024 * 1024, *, start: int = 0
    ) -> AsyncIterator[bytes]:
        """Stream an object's bytes from byte ``start`` on; raises KeyError if absent."""

    def list(self, prefix: str, *, start_after: str = "") -> AsyncIterator[StoredObject]:
        """Every object whose key starts with ``prefix``, in key order; only the keys after
        ``start_after`` when given (a reader that wants a chain's newest links lists those,
        not the whole chain)."""

    async def list_folders(self, prefix: str) -> Sequence[str]:
        """The names of the "folders" right under ``prefix`` (which ends in ``/``): each
        ``name`` some key ``prefix + name + "/..."`` has, sorted. One request (S3: a
        delimiter listing), not a listing of every key (``get`` finds the chain's
        writers so)."""

    async def delete(self, key: str) -> None:
        """Remove one object (used only under ``_archiver/``, e.g. by ``check``)."""

    async def url_for(self, key: str, expires: int) -> str:
        """A presigned GET URL (S3) or the absolute file path (local)."""

    async def probe(self) -> None:
        """Raise StorageError unless the storage is reachable now (readiness)."""

    async def cleanup_incomplete(self, older_than: datetime | None = None) -> int:
        """Abort multipart uploads / remove temporary files the archiver left behind.

        Only those started (local: last written) before ``older_than``: a younger
        one may belong to another process at work on the same storage. ``None``:
        every one, for when no other process can be writing.
        """


@dataclass(frozen=True, slots=True)
class ObjectProtection:
    """An object's Object Lock state."""

    mode: str | None  # GOVERNANCE, COMPLIANCE, or None (no retention)
    retain_until: datetime | None
    legal_hold: bool
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class BucketProtection:
    """What the bucket itself can enforce."""

    versioning: str  # "Enabled", "Suspended" or "Disabled" (never enabled)
    object_lock: bool
    default_mode: str | None = None  # the bucket's default retention, if any
    default_days: int | None = None
    default_years: int | None = None


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One version of a key in a versioned bucket."""

    version_id: str
    size: int
    is_latest: bool
    last_modified: datetime | None
    delete_marker: bool = False
    etag: str | None = None  # as listed (a plain MD5 for a single-part, unencrypted write)


@runtime_checkable
class LockingStore(Protocol):
    """An optional capability: storage with S3 Object Lock (retention, legal holds)."""

    async def bucket_protection(self) -> BucketProtection:
        """Versioning and Object Lock of the bucket."""

    async def protection(self, key: str, version_id: str | None = None) -> ObjectProtection | None:
        """A version's retention and legal hold (the current one by default); None if absent."""

    async def set_legal_hold(self, key: str, on: bool, version_id: str | None = None) -> None:
        """Turn a version's legal hold on or off (the current one by default)."""


@runtime_checkable
class VersionedStore(Protocol):
    """An optional capability: reading the versions of a key (S3 versioned buckets)."""

    async def versions(self, key: str) -> list[ObjectVersion]:
        """Every version of ``key``, delete markers included, oldest first."""

    def all_versions(self, prefix: str) -> AsyncIterator[tuple[str, ObjectVersion]]:
        """Every version and delete marker of every key under ``prefix``: (key, version)."""

    async def head_version(self, key: str, version_id: str) -> StoredObject | None:
        """One version's size, stored SHA-256 and proof; None if absent or a delete marker."""

    def read_version(
        self, key: str, version_id: str, chunk_size: int = 1024 * 1024, *, start: int = 0
    ) -> AsyncIterator[bytes]:
        """Stream one version's bytes from byte ``start`` on; KeyError if absent."""

    async def version_url(self, key: str, version_id: str, expires: int) -> str:
        """A presigned GET URL to one version."""

    async def delete_version(self, key: str, version_id: str) -> None:
        """Remove one version or delete marker for good (``dispose``); a lock refuses it."""


async def listed_keys(store: ObjectStore, prefix: str) -> AsyncGenerator[str, None]:
    """The keys under ``prefix``, in key order: through the store's own keys-only listing
    when its class has one (a local folder's reads no file's size or time), else its
    :meth:`~ObjectStore.list`'s (a wrapper that counts or fails listings is one that
    does not: its own ``list`` is used)."""
    # The class that defines list_keys must also be the one whose list is used: a subclass
    # that lists otherwise (a test's store with ETags) is listed through its own list.
    owner = next((c for c in type(store).__mro__ if "list_keys" in vars(c)), None)
    if owner is not None and getattr(type(store), "list", None) is vars(owner).get("list"):
        # Closed here if this one is let go: its listing tasks stop with it.
        async with aclosing(vars(owner)["list_keys"](store, prefix)) as keys:
            async for key in keys:
                yield key
        return
    async for obj in store.list(prefix):
        yield obj.key
