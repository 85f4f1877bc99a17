"""Registered writers: a writer's chain counts only if a witness key signed its registration.

Registering is a deliberate step, taken by whoever holds a witness key (an
auditor, not the archive's operator): for a new deployment, after a state
database was lost (a new state draws a new writer id), and for the chain a
``seal`` makes. The registration is a signed note in the archive::

    _archiver/writers/<writer>.note      archiver-writer/v1 / <origin> / <writer>

written once. The storage administrator can delete it (verify then reports the
writer unregistered) but cannot forge one without the key.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from archiver.storage.base import ObjectExistsError, ObjectStore, PutOutcome
from archiver.storage.layout import ARCHIVER_PREFIX, WRITER_ID
from archiver.witness.note import MAX_NOTE_BYTES, NoteError, Signer, Verifier, open_note, sign_note

WRITERS_PREFIX = f"{ARCHIVER_PREFIX}writers/"
HEADER = "archiver-writer/v1"


def registration_key(writer: str) -> str:
    """Where a writer's registration is kept."""
    return f"{WRITERS_PREFIX}{writer}.note"


def registration_text(origin: str, writer: str) -> str:
    """The note text registering ``writer`` in the archive ``origin``."""
    return f"{HEADER}\n{origin}\n{writer}\n"


async def _read(store: ObjectStore, key: str) -> bytes | None:
    found = await store.head(key)
    if found is None:
        return None
    if found.size > MAX_NOTE_BYTES:
        raise NoteError(f"{found.size} bytes: larger than any registration")
    chunks = []
    try:
        async for chunk in store.read(key):
            chunks.append(chunk)
    except KeyError:
        return None
    return b"".join(chunks)


async def check_registration(
    store: ObjectStore, writer: str, verifiers: list[Verifier]
) -> str | None:
    """None if a trusted key registered ``writer``; else why not (one line)."""
    key = registration_key(writer)
    try:
        data = await _read(store, key)
        if data is None:
            return f"no registration ({store.full_key(key)} is absent)"
        note = open_note(data, verifiers)
    except NoteError as exc:
        return f"its registration {store.full_key(key)} is not valid: {exc}"
    lines = note.text.split("\n")
    if len(lines) != 4 or lines[0] != HEADER or lines[2] != writer:
        return f"its registration {store.full_key(key)} registers another writer"
    return None


async def register_writer(
    store: ObjectStore, signer: Signer, origin: str, writer: str, when: datetime
) -> tuple[str, bool]:
    """Write ``writer``'s registration, signed by ``signer``: (its key, True if new).

    A registration already there and valid for this key is kept (False); one
    that is not raises NoteError (it must be looked at, not overwritten).
    """
    if not WRITER_ID.fullmatch(writer):
        raise NoteError(f"not a writer id: {writer!r}")
    key = registration_key(writer)
    data = sign_note(registration_text(origin, writer), signer, when).encode()
    try:
        written = await store.put_bytes(
            key, data, sha256=hashlib.sha256(data).hexdigest(), content_type="text/plain"
        )
    except ObjectExistsError:
        why = await check_registration(store, writer, [signer.verifier])
        if why is not None:
            raise NoteError(f"{store.full_key(key)} exists and is not valid: {why}") from None
        return store.full_key(key), False
    # The same note again (registered twice in one second): nothing new was written.
    return store.full_key(key), written.outcome is PutOutcome.CREATED
