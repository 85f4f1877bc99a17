"""Listening, downloading and holding one recording, each after a check against its line.

A line is proven before its recording is served: its manifest object must be
the one its chain link records, on the chain walked back from the writer's
head, as ``get`` and ``verify`` prove it (a refusal is audited "refused").
A recording is checked before it is served: its size and SHA-256 against the
manifest line (the storage's stored checksum where it keeps one, else the
bytes re-read and hashed: :func:`archiver.retrieval.verify.check_entry`). One
that fails is not served, and the reason is shown. A play is one audited
action: it yields a grant (bound to the session and the call) that the
audio element's Range requests then use for GRANT_SECONDS, so seeking does not
re-audit. Each of those requests serves the version the line pinned (in a
versioned bucket), and only after one HEAD shows the object is still the one
the manifest's proof records: a recording replaced after Play is refused.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Any

from aiohttp import web

from archiver.console.auth import PlayGrant, Role
from archiver.console.context import Console, console_of, needs, session_of
from archiver.console.index import IndexedCall
from archiver.console.reasons import reason_of
from archiver.errors import ArchiverError
from archiver.manifest.reader import read_object
from archiver.retrieval.errors import IntegrityError
from archiver.retrieval.fetch import archived_version, mismatch
from archiver.retrieval.index import has_line
from archiver.retrieval.tombstones import read_tombstones
from archiver.retrieval.verify import ProblemKind, VerifyReport, check_entry
from archiver.storage.base import LockingStore, ObjectStore, VersionedStore

_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_AUDIO_TYPES = re.compile(r"audio/[a-z0-9.+-]{1,40}")
MAX_GRANTS = 100  # per session: the oldest play grants are dropped beyond this
# How long a Play lets the audio element fetch ranges: long enough to listen and
# seek, short enough that a grant is not a standing licence for the whole session.
GRANT_SECONDS = 10 * 60.0
# A grant streams at most this much per response: enough for the audio element to
# play and seek, while fetching a whole recording takes many requests (a download
# needs the exporter role and is audited as one).
GRANT_RANGE = 1024 * 1024


async def call_of(request: web.Request) -> IndexedCall:
    """The call the URL names; 404 if the index has none."""
    item = await console_of(request).calls.get(int(request.match_info["id"]))
    if item is None:
        raise web.HTTPNotFound(text="no such call\n")
    return item


def target_of(item: IndexedCall) -> dict[str, Any]:
    """What an audit record names for one call."""
    call = item.call
    return {
        "sip_call_id": call.sip_call_id,
        "cdr_id": call.cdr_id,
        "provider": call.provider,
        "object_key": call.object_key,
    }


async def prove_line(
    console: Console, item: IndexedCall, contents: dict[str, bytes] | None = None
) -> str | None:
    """Why the call's line is not proven by the chain, or None.

    The manifest object named is read (``contents`` keeps the last one read, for
    a selection taken in manifest order), must
    hold exactly this line, and must be the object its chain link records, on
    the chain walked back from the writer's head (:class:`ChainProver`): a line
    edited to match a tampered recording, or one in a manifest object planted
    beside the chain or cut from it, is refused as ``get`` refuses it.
    """
    key = item.call.manifest_key or ""
    cache = {} if contents is None else contents
    try:
        if key not in cache:
            cache.clear()  # one manifest object held at a time: memory stays bounded
            cache[key] = await read_object(console.store, key)
        if not has_line(cache[key], item.call.fields):
            return f"OUT-OF-CHAIN {key}: the manifest object no longer holds this line"
        await console.prover.prove(key, cache[key])
    except KeyError:
        return f"OUT-OF-CHAIN {key}: the manifest object is gone (cut from the archive?)"
    except IntegrityError as exc:
        return f"OUT-OF-CHAIN {key}: {exc}"
    return None


async def check_recording(
    console: Console, item: IndexedCall, contents: dict[str, bytes] | None = None
) -> str | None:
    """Why the recording may not be served, or None; remembered in the index.

    First its line, proven in the chain (:func:`prove_line`); then the recording
    against the line's proof recorded at write time (an object the storage keeps
    no checksum of, a local file, is read back and hashed).
    """
    reason = await prove_line(console, item, contents)
    if reason is None:
        problem = await check_entry(console.store, item.call, False, VerifyReport())
        if problem is not None and problem.kind is ProblemKind.ALTERED:
            # Replaced: read it to say whether its bytes are still the archived ones.
            problem = await check_entry(console.store, item.call, True, VerifyReport())
        reason = problem.line() if problem else None
        if problem is not None and problem.kind is ProblemKind.MISSING:
            # Gone under a proven tombstone (archiver dispose, subject --erase): say so.
            stone = (await read_tombstones(console.store)).of(item.call)
            if stone is not None:
                reason = (
                    f"DISPOSED {item.call.object_key}: disposed on {stone.disposed_day} under "
                    f"rule {stone.rule} ({stone.reason}, approved by {stone.approved_by})"
                )
    await console.calls.record_check(item.id, reason)
    return reason


async def _audit(
    request: web.Request, action: str, item: IndexedCall, result: str, **details: Any
) -> None:
    console = console_of(request)
    user = session_of(request).user
    if result == "ok":
        try:
            await console.audit_log.record(
                console.store, user, action, target_of(item), result, details
            )
        except ArchiverError as exc:
            raise web.HTTPServiceUnavailable(
                text=f"the audit record cannot be written, nothing served: {exc}\n"
            ) from exc
    else:
        await console.audit_log.record(
            console.store, user, action, target_of(item), result, details, best_effort=True
        )


@needs(Role.LISTENER)
async def play(request: web.Request) -> web.StreamResponse:
    """POST /calls/{id}/play: check, audit, and give the audio element its grant."""
    console = console_of(request)
    item = await call_of(request)
    reason = await reason_of(request, item.id)
    problem = await check_recording(console, item)
    if problem is not None:
        await _audit(request, "play", item, "refused", reason=reason, problem=problem)
        return web.json_response({"error": problem}, status=409)
    await _audit(request, "play", item, "ok", reason=reason)
    grants = session_of(request).grants
    while len(grants) >= MAX_GRANTS:
        grants.pop(next(iter(grants)))
    grant = secrets.token_urlsafe(24)
    grants[grant] = PlayGrant(item.id, time.monotonic() + GRANT_SECONDS)
    return web.json_response({"src": f"/calls/{item.id}/audio?grant={grant}"})


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte of a single ``Range: bytes=`` request, or None for the whole.

    Raises 416 for a range outside the object; a multi-range or malformed
    header is ignored (the whole object is served), as RFC 9110 allows.
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first_text, last_text = match.groups()
    if not first_text:  # a suffix: the last N bytes
        length = int(last_text)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or last < first:
        raise _unsatisfiable(size)
    return first, last


def _unsatisfiable(size: int) -> web.HTTPRequestRangeNotSatisfiable:
    return web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


async def byte_range(
    store: ObjectStore, key: str, first: int, last: int, version: str | None = None
) -> AsyncIterator[bytes]:
    """Bytes ``first..last`` of an object (of its ``version``, given one): the storage
    reads from ``first`` (an S3 Range request, a seek in a file), so a seek costs what
    it plays, not what precedes it."""
    position = first
    if version is not None and isinstance(store, VersionedStore):
        chunks = store.read_version(key, version, start=first)
    else:
        chunks = store.read(key, start=first)
    try:
        async for chunk in chunks:
            start, position = position, position + len(chunk)
            yield chunk[: last + 1 - start]
            if position > last:
                return
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()  # the storage's response, released at once


def _content_type(item: IndexedCall) -> str:
    given = (item.call.content_type or "").strip().lower()
    return given if _AUDIO_TYPES.fullmatch(given) else "application/octet-stream"


def file_name(item: IndexedCall) -> str:
    """A safe file name for the recording (its key's last segment, sanitized)."""
    name = _SAFE_NAME.sub("_", PurePosixPath(item.call.object_key).name).strip("._")
    return name[:120] or f"recording-{item.id}"


async def still_archived(store: ObjectStore, item: IndexedCall) -> tuple[str | None, str | None]:
    """``(version to read, None)``, or ``(None, why not)``: one HEAD of the pinned
    version (else the current object) against the size, SHA-256 and proof of the line."""
    call = item.call
    key = store.relative_key(call.object_key)
    version = call.proof.version_id if call.proof is not None else None
    if version is not None and isinstance(store, VersionedStore):
        head = await store.head_version(key, version)
    else:
        version, head = None, await store.head(key)
    if head is None:
        return None, f"missing: {key} is gone since it was checked"
    why = mismatch(call, key, head.size, head.sha256)
    diffs = call.proof.differences(head.proof) if call.proof is not None else []
    if why is None and diffs:
        why = f"{key} is not the object stored when archived: {'; '.join(diffs)}"
    return (None, f"altered since it was checked: {why}") if why else (version, None)


@needs(Role.LISTENER)
async def audio(request: web.Request) -> web.StreamResponse:
    """GET /calls/{id}/audio?grant=: the checked recording, with Range (seeking)."""
    console = console_of(request)
    item = await call_of(request)
    grants = session_of(request).grants
    token = request.query.get("grant", "")
    grant = grants.get(token)
    if grant is None or grant.call_id != item.id:
        raise web.HTTPForbidden(text="press Play first: this recording has no grant\n")
    if grant.expires <= time.monotonic():
        del grants[token]
        raise web.HTTPForbidden(text="the grant has expired: press Play again\n")
    version, problem = await still_archived(console.store, item)
    if problem is not None:
        await console.calls.record_check(item.id, problem)
        raise web.HTTPConflict(text=f"refused: {problem}\n")
    size = item.call.size
    wanted = parse_range(request.headers.get("Range"), size)
    first, last = wanted if wanted is not None else (0, size - 1)
    last = min(last, first + GRANT_RANGE - 1)  # ranges only: never the whole of a long one
    partial = wanted is not None or last < size - 1
    response = web.StreamResponse(status=206 if partial else 200)
    response.content_type = _content_type(item)
    response.headers["Accept-Ranges"] = "bytes"
    response.content_length = max(0, last - first + 1)
    if partial:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    await response.prepare(request)
    if size and request.method != "HEAD":
        key = console.store.relative_key(item.call.object_key)
        async for piece in byte_range(console.store, key, first, last, version):
            await response.write(piece)
    await response.write_eof()
    return response


@needs(Role.EXPORTER)
async def download(request: web.Request) -> web.StreamResponse:
    """POST /calls/{id}/download: the checked, audited recording as an attachment.

    The bytes are hashed on the way and the last chunk is held back until the
    hash is the manifest's: a recording altered after its check never arrives
    whole (the connection is cut short of its Content-Length).
    """
    console = console_of(request)
    item = await call_of(request)
    reason = await reason_of(request, item.id)
    problem = await check_recording(console, item)
    if problem is not None:
        await _audit(request, "download", item, "refused", reason=reason, problem=problem)
        raise web.HTTPConflict(text=f"refused: {problem}\n")
    await _audit(request, "download", item, "ok", reason=reason)
    response = web.StreamResponse()
    response.content_type = _content_type(item)
    response.content_length = item.call.size
    response.headers["Content-Disposition"] = f'attachment; filename="{file_name(item)}"'
    await response.prepare(request)
    digest = hashlib.sha256()
    held = b""
    key = console.store.relative_key(item.call.object_key)
    async for chunk in console.store.read(key):
        digest.update(chunk)
        if held:
            await response.write(held)
        held = chunk
    if digest.hexdigest() != item.call.sha256:
        await console.calls.record_check(item.id, "changed while being downloaded")
        raise ConnectionResetError("the recording changed while being downloaded")
    await response.write(held)
    await response.write_eof()
    return response


async def protection_of(store: ObjectStore, item_call: Any) -> dict[str, Any]:
    """The recording's Object Lock state for the page: ``{"available": False}`` without one."""
    if not isinstance(store, LockingStore):
        return {"available": False}
    bucket = await store.bucket_protection()
    if not bucket.object_lock:
        return {"available": False}
    try:
        key = store.relative_key(item_call.object_key)
    except ValueError:
        return {"available": False}
    version = await archived_version(store, key, item_call, trust_single=True)
    if version is None:
        return {"available": True, "missing": True}
    state = await store.protection(key, version)
    if state is None:
        return {"available": True, "missing": True}
    return {
        "available": True,
        "missing": False,
        "version": version,
        "legal_hold": state.legal_hold,
        "mode": state.mode,
        "retain_until": state.retain_until.isoformat() if state.retain_until else None,
    }


@needs(Role.OFFICER)
async def hold(request: web.Request) -> web.StreamResponse:
    """POST /calls/{id}/hold: legal hold on (on=1) or off (on=0) the archived version."""
    console = console_of(request)
    item = await call_of(request)
    reason = await reason_of(request, item.id)
    on = (await request.post()).get("on") == "1"
    action = "hold-on" if on else "hold-off"
    store = console.store
    state = await protection_of(store, item.call)
    if not state["available"]:
        raise web.HTTPConflict(text="this storage has no Object Lock: no legal holds\n")
    if state["missing"] or not isinstance(store, LockingStore):
        await _audit(request, action, item, "missing", reason=reason)
        raise web.HTTPConflict(text="no version of this recording holds the archived bytes\n")
    key = store.relative_key(item.call.object_key)
    # Audited first: a hold change nobody can account for must not happen.
    await _audit(request, action, item, "ok", reason=reason, version_id=state["version"])
    try:
        await store.set_legal_hold(key, on, state["version"])
    except KeyError:
        raise web.HTTPConflict(text="the archived version is gone\n") from None
    raise web.HTTPSeeOther(f"/calls/{item.id}")


def add_routes(app: web.Application) -> None:
    """Listening, downloading and holding."""
    app.router.add_post(r"/calls/{id:\d{1,18}}/play", play)
    app.router.add_get(r"/calls/{id:\d{1,18}}/audio", audio)
    app.router.add_post(r"/calls/{id:\d{1,18}}/download", download)
    app.router.add_post(r"/calls/{id:\d{1,18}}/hold", hold)
