"""One recording: HTTP -> verify -> storage, streamed.

A recording counts as archived only when verified: the byte count matches
Content-Length when one was sent, the first bytes are audio by their magic
numbers (an HTML or JSON body is refused even with status 200), and the
SHA-256 computed while streaming goes to the storage as the object's checksum.
A recording up to ``buffer_bound`` bytes is buffered and sent in one PUT; a
larger one goes up as a multipart upload, part by part as it arrives.
Nothing is visible in the storage until every check has passed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import aiohttp

from archiver.errors import RetriableError, SkippableError
from archiver.failures import FailureKind
from archiver.http import redact_url
from archiver.manifest.retention import Schedule, call_fields, load_schedule
from archiver.models import CallRecord
from archiver.pipeline.hosts import HostPolicy, HostRefusedError, InvalidUrlError, UrlRefusedError
from archiver.settings import Settings, SourceSettings, StorageSettings, TransferSettings
from archiver.storage.audio import sniff
from archiver.storage.base import ObjectExistsError, ObjectStore, Upload, Written
from archiver.storage.keys import names_cdr, render_key, sibling_key

log = logging.getLogger("archiver.transfer")

MAX_REDIRECTS = 5
SNIFF_BYTES = 64


class Verdict(StrEnum):
    """What became of one transfer attempt."""

    ARCHIVED = "archived"
    NOT_READY = "not_ready"  # 404: the provider has not produced it yet
    EXPIRED = "expired"  # 401/403/410 on the recording: refresh the URL through the source
    RETRY = "retry"  # transient: 5xx, timeouts, resets, truncation, non-audio body
    FAILED = "failed"  # permanent: retrying cannot help


@dataclass(frozen=True, slots=True)
class Stored:
    """The object a verified recording became."""

    key: str
    sha256: str
    size: int
    content_type: str
    written: Written  # what the write did, and the storage's proof of the object


@dataclass(frozen=True, slots=True)
class TransferResult:
    """The verdict, what went wrong as a value and as words a person can act on,
    and what was stored. ``kind`` is None only for an archived recording."""

    verdict: Verdict
    reason: str = ""
    stored: Stored | None = None
    kind: FailureKind | None = None


@dataclass(frozen=True)
class TransferConfig:
    """What a transfer is told, as the settings say it: the storage's key template
    and buffering, the bounds on one attempt (``ARCHIVER_TRANSFER__*``), and the
    provider's time zone (the key's date)."""

    storage: StorageSettings
    limits: TransferSettings = field(default_factory=TransferSettings)
    tz: ZoneInfo = field(default_factory=lambda: SourceSettings().tz)
    # The retention schedule, where recordings are locked (ARCHIVER_STORAGE__OBJECT_LOCK_MODE):
    # each one's Object Lock date is its rule's end.
    schedule: Schedule | None = None

    @classmethod
    def of(cls, settings: Settings) -> TransferConfig:
        """The transfer's part of ``settings`` (the schedule read when locks are asked)."""
        schedule = None
        if settings.storage.object_lock_mode is not None:
            codes = {
                code: str(meaning) for code, meaning in settings.source.direction_codes.items()
            }
            schedule = load_schedule(
                settings.retention.rules_file, settings.storage.retention_days, codes
            )
        return cls(settings.storage, settings.transfer, settings.source.tz, schedule)

    def retain_until(self, call: CallRecord) -> datetime | None:
        """The Object Lock date of ``call``'s recording from its rule; None: the default."""
        if self.schedule is None:
            return None
        return self.schedule.due(call_fields(call)).ends


class _Bad(Exception):
    def __init__(
        self, verdict: Literal[Verdict.RETRY, Verdict.FAILED], kind: FailureKind, reason: str
    ) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.kind = kind
        self.reason = reason


class Transferrer:
    """Moves recordings from their URLs into the object store."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        store: ObjectStore,
        policy: HostPolicy,
        config: TransferConfig,
    ) -> None:
        self._session = session
        self._store = store
        self._policy = policy
        self._config = config

    @property
    def deadline(self) -> float:
        """Seconds one attempt may take (ARCHIVER_TRANSFER__DEADLINE)."""
        return self._config.limits.deadline

    async def transfer(self, call: CallRecord) -> TransferResult:
        """One attempt at archiving ``call``'s recording."""
        url = call.recording_url
        if not url:
            return TransferResult(Verdict.FAILED, "no recording URL", kind=FailureKind.NO_URL)
        deadline = self._config.limits.deadline
        try:
            # The whole attempt, headers to stored object: a host that drips or
            # never ends holds a worker this long at most (an upload is aborted).
            async with asyncio.timeout(deadline):
                return await self._attempt(call, url)
        except TimeoutError:
            return _retry(FailureKind.DEADLINE, f"not stored within the {deadline:g}s deadline")

    async def _attempt(self, call: CallRecord, url: str) -> TransferResult:
        try:
            try:
                return await self._transfer(call, url, sibling=False)
            except ObjectExistsError:
                # A transferred call: another CDR with this sip_call_id holds the
                # key. This recording goes beside it, under a name with its cdr id.
                if names_cdr(self._config.storage.key_template):
                    raise
                return await self._transfer(call, url, sibling=True)
        except UrlRefusedError as exc:
            return _failed(exc.kind, str(exc))
        except _Bad as exc:
            return TransferResult(exc.verdict, exc.reason, kind=exc.kind)
        except RetriableError as exc:
            # The storage's own transient refusals (a checksum it computed otherwise...).
            return _retry(FailureKind.STORAGE, str(exc))
        except SkippableError as exc:
            # e.g. a call whose values cannot make a safe object key.
            return _failed(FailureKind.BAD_KEY, str(exc))
        except ObjectExistsError as exc:
            return _failed(
                FailureKind.OBJECT_CONFLICT, f"a different object already exists at {exc.key}"
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return _retry(FailureKind.TIMED_OUT, "timed out")
        except aiohttp.ClientPayloadError as exc:
            return _retry(FailureKind.TRUNCATED, f"body cut short ({type(exc).__name__})")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, HostRefusedError):
                return _failed(FailureKind.HOST_NOT_ALLOWED, str(exc.os_error))
            return _retry(FailureKind.CONNECTION, f"connection failed ({type(exc).__name__})")
        except aiohttp.InvalidURL as exc:
            # Permanent: the same URL is refused the same way on every attempt.
            return _failed(FailureKind.INVALID_URL, f"invalid recording URL ({type(exc).__name__})")
        except aiohttp.ClientError as exc:
            return _retry(FailureKind.CONNECTION, f"connection failed ({type(exc).__name__})")

    async def _transfer(self, call: CallRecord, url: str, *, sibling: bool) -> TransferResult:
        for _ in range(MAX_REDIRECTS + 1):
            self._policy.check_url(url)
            async with self._session.get(url, allow_redirects=False) as resp:
                if resp.status in (301, 302, 303, 307, 308):
                    location = resp.headers.get("Location")
                    if not location:
                        raise _Bad(
                            Verdict.RETRY,
                            FailureKind.HTTP_ERROR,
                            f"HTTP {resp.status} without Location",
                        )
                    url = _follow(url, location)
                    continue
                verdict = _status_verdict(resp.status)
                if verdict is not None:
                    kind = (
                        FailureKind.NEVER_AVAILABLE
                        if verdict is Verdict.NOT_READY
                        else FailureKind.HTTP_ERROR
                    )
                    reason = f"HTTP {resp.status} from {redact_url(url)}"
                    return TransferResult(verdict, reason, kind=kind)
                stored = await self._stream(call, resp, sibling)
                return TransferResult(Verdict.ARCHIVED, stored=stored)
        return _failed(FailureKind.TOO_MANY_REDIRECTS, f"more than {MAX_REDIRECTS} redirects")

    async def _stream(
        self, call: CallRecord, resp: aiohttp.ClientResponse, sibling: bool
    ) -> Stored:
        expected = resp.content_length
        limit = self._config.limits.max_size
        if expected is not None and expected > limit:
            raise _Bad(Verdict.FAILED, FailureKind.TOO_LARGE, _too_large(limit, expected))
        pace = _Pace(self._config.limits.min_throughput, self._config.limits.throughput_window)
        digest = hashlib.sha256()
        received = 0
        # Up to buffer_bound the chunks are kept as received and joined once for the
        # PUT (one copy of the body, not two); past it they feed a multipart upload.
        chunks: list[bytes] = []
        buffer = bytearray()
        upload: Upload | None = None
        kind: tuple[str, str] | None = None
        try:
            # The pieces as the socket delivered them: iter_chunked(n) would join
            # or cut them to n bytes, one more copy of the body (the join below is
            # the only one a small recording gets). Each piece is bounded by the
            # transport's read buffer.
            async for chunk, _ in resp.content.iter_chunks():
                digest.update(chunk)
                received += len(chunk)
                if received > limit:
                    # No Content-Length, or a host sending past it: stop before
                    # the storage holds more than the limit (the upload is aborted).
                    raise _Bad(Verdict.FAILED, FailureKind.TOO_LARGE, _too_large(limit))
                pace.check(received)
                if expected is not None and received > expected:
                    raise _Bad(
                        Verdict.RETRY, FailureKind.TRUNCATED, "more bytes than Content-Length"
                    )
                if upload is None:
                    chunks.append(chunk)
                    if kind is None and received >= SNIFF_BYTES:
                        kind = _sniff_or_refuse(_head(chunks), resp)
                    if received <= self._config.storage.buffer_bound:
                        continue
                    if kind is None:
                        kind = _sniff_or_refuse(_head(chunks), resp)
                    upload = await self._store.start_upload(
                        self._key(call, kind[1], sibling),
                        content_type=kind[0],
                        retain_until=self._config.retain_until(call),
                    )
                    buffer = bytearray(b"".join(chunks))
                    chunks = []
                else:
                    buffer += chunk
                while len(buffer) >= self._config.storage.part_size:
                    await upload.write_part(bytes(buffer[: self._config.storage.part_size]))
                    del buffer[: self._config.storage.part_size]
            if received == 0:
                raise _Bad(Verdict.RETRY, FailureKind.TRUNCATED, "empty body")
            if expected is not None and received != expected:
                raise _Bad(
                    Verdict.RETRY,
                    FailureKind.TRUNCATED,
                    f"truncated: {received} of {expected} bytes",
                )
            if kind is None:
                kind = _sniff_or_refuse(_head(chunks), resp)
            sha = digest.hexdigest()
            key = self._key(call, kind[1], sibling)
            if upload is not None:
                if buffer:
                    await upload.write_part(bytes(buffer))
                written = await upload.complete(sha, received)
                upload = None
            else:
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                written = await self._store.put_bytes(
                    key,
                    body,
                    sha256=sha,
                    content_type=kind[0],
                    retain_until=self._config.retain_until(call),
                )
            return Stored(key, sha, received, kind[0], written)
        finally:
            if upload is not None:
                # Shielded: a cancelled transfer must still leave no orphan upload.
                await asyncio.shield(upload.abort())

    def _key(self, call: CallRecord, ext: str, sibling: bool) -> str:
        key = render_key(self._config.storage.key_template, call, ext, self._config.tz)
        return sibling_key(key, call, ext) if sibling else key


class _Pace:
    """The minimum throughput, measured over each window of the body (pure but for the clock)."""

    def __init__(self, floor: int, window: float) -> None:
        self._floor = floor
        self._window = window
        self._since = time.monotonic()
        self._at = 0

    def check(self, received: int) -> None:
        now = time.monotonic()
        elapsed = now - self._since
        if not self._floor or elapsed < self._window:
            return
        got = received - self._at
        if got < self._floor * elapsed:
            raise _Bad(
                Verdict.RETRY,
                FailureKind.TOO_SLOW,
                f"too slow: {got} bytes in {elapsed:.0f}s (minimum {self._floor} bytes/s)",
            )
        self._since, self._at = now, received


def _too_large(limit: int, announced: int | None = None) -> str:
    what = f"{announced} bytes announced" if announced is not None else "more bytes sent"
    return f"recording too large: {what}, at most {limit} allowed (ARCHIVER_TRANSFER__MAX_SIZE)"


def _follow(url: str, location: str) -> str:
    """The redirect's target; checked by the policy like the first URL."""
    try:
        return urljoin(url, location)
    except ValueError:
        raise InvalidUrlError("invalid redirect Location") from None


def _failed(kind: FailureKind, reason: str) -> TransferResult:
    return TransferResult(Verdict.FAILED, reason, kind=kind)


def _retry(kind: FailureKind, reason: str) -> TransferResult:
    return TransferResult(Verdict.RETRY, reason, kind=kind)


def _status_verdict(status: int) -> Verdict | None:
    """None for success; else what the status means for a recording (pure)."""
    if 200 <= status < 300:
        return None
    if status == 404:
        return Verdict.NOT_READY
    if status in (401, 403, 410):
        return Verdict.EXPIRED
    if status in (408, 425, 429) or status >= 500:
        return Verdict.RETRY
    return Verdict.FAILED


def _head(chunks: list[bytes]) -> bytes:
    """The body's first SNIFF_BYTES (or fewer), from the chunks received so far."""
    head = b""
    for chunk in chunks:
        head += chunk[: SNIFF_BYTES - len(head)]
        if len(head) >= SNIFF_BYTES:
            break
    return head


def _sniff_or_refuse(head: bytes, resp: aiohttp.ClientResponse) -> tuple[str, str]:
    kind = sniff(head[:SNIFF_BYTES])
    if kind is None:
        ctype = resp.headers.get("Content-Type", "no content type").split(";")[0]
        raise _Bad(Verdict.RETRY, FailureKind.NOT_AUDIO, f"body is not audio ({ctype})")
    return kind
