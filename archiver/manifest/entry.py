"""One manifest line: an archived recording, what is known of its call, and its proof.

:class:`ManifestEntry` is the one shape of "an archived recording" from the
writer to ``verify``, ``get``, ``search`` and the id index. It is built from a
call and what the storage said (:meth:`ManifestEntry.build`), written as one
JSON line (:meth:`to_line`) and read back (:meth:`from_line`). It keeps the
whole line (``fields``): unknown fields written by a newer archiver survive a
round trip and show in exports.

Since contract v2 a line also records the storage's proof of the object
(``etag``, ``version_id``, ``checksum_sha256``, ``checksum_type``; null where
the storage has none). A line without the ``etag`` field was written before
v2: it is *legacy*, checked on its size and the storage's own checksum only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from archiver.models import CallRecord
from archiver.storage.base import ObjectProof
from archiver.timeutil import utc_text

_HEX64 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = ("sip_call_id", "cdr_id", "provider", "object_key", "sha256", "size")
PROOF_FIELDS = ("etag", "version_id", "checksum_sha256", "checksum_type")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _optional_text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise ValueError(f"{name} is not a string")
    return value


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One manifest line, parsed; ``fields`` is the whole line as written."""

    sip_call_id: str
    cdr_id: str
    provider: str
    object_key: str  # as in the manifest: with the S3 prefix, or relative (local)
    sha256: str
    size: int
    content_type: str | None
    call_started_at: datetime | None
    proof: ObjectProof | None  # None: a legacy line (written before v2)
    fields: Mapping[str, Any] = field(compare=False, repr=False)
    manifest_key: str | None = field(default=None, compare=False)

    @classmethod
    def build(
        cls,
        call: CallRecord,
        *,
        object_key: str,
        sha256: str,
        size: int,
        content_type: str,
        archived_at: datetime,
        proof: ObjectProof,
    ) -> ManifestEntry:
        """The line for a recording just stored.

        The recording URL is left out on purpose: signed URLs carry secrets.
        """
        fields: dict[str, Any] = {
            "sip_call_id": call.sip_call_id,
            "cdr_id": call.cdr_id,
            "provider": call.provider.value,
            "object_key": object_key,
            "sha256": sha256,
            "size": size,
            "content_type": content_type,
            "call_started_at": call.started_at.isoformat(),
            "archived_at": utc_text(archived_at),
            "etag": proof.etag,
            "version_id": proof.version_id,
            "checksum_sha256": proof.checksum_sha256,
            "checksum_type": proof.checksum_type,
            "call_answered_at": _iso(call.answered_at),
            "call_ended_at": _iso(call.ended_at),
            "direction": call.direction.value if call.direction else None,
            "direction_raw": call.direction_raw,
            "from_number": call.from_number,
            "to_number": call.to_number,
            "extension": call.extension,
            "agent": call.agent,
            "agent_name": call.agent_name,
            "customer_id": call.customer_id,
            "duration": call.duration,
            "billsec": call.billsec,
            "status": call.status,
            "cause": call.cause,
        }
        return cls.from_line(fields)

    @classmethod
    def from_line(cls, data: object, manifest_key: str | None = None) -> ManifestEntry:
        """Parse one decoded manifest line; ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        missing = [name for name in _REQUIRED if data.get(name) in (None, "")]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        sha = str(data["sha256"]).lower()
        if not _HEX64.fullmatch(sha):
            raise ValueError("sha256 is not 64 hex digits")
        size = data["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("size is not a byte count")
        started: datetime | None = None
        if data.get("call_started_at"):
            try:
                started = datetime.fromisoformat(str(data["call_started_at"]))
            except ValueError:
                raise ValueError("call_started_at is not ISO 8601") from None
            if started.tzinfo is None:
                raise ValueError("call_started_at has no UTC offset")
        proof = None
        if "etag" in data:
            proof = ObjectProof(*(_optional_text(data, name) for name in PROOF_FIELDS))
        return cls(
            sip_call_id=str(data["sip_call_id"]),
            cdr_id=str(data["cdr_id"]),
            provider=str(data["provider"]),
            object_key=str(data["object_key"]),
            sha256=sha,
            size=size,
            content_type=data.get("content_type"),
            call_started_at=started,
            proof=proof,
            fields=data,
            manifest_key=manifest_key,
        )

    def to_line(self) -> str:
        """One JSON Lines line (no trailing newline), UTF-8 kept readable."""
        return json.dumps(dict(self.fields), ensure_ascii=False, separators=(",", ":"))

    @property
    def identity(self) -> tuple[str, str]:
        """(provider, cdr_id): what makes an archived call unique."""
        return (self.provider, self.cdr_id)

    @property
    def legacy(self) -> bool:
        """True for a line written before v2: no proof recorded."""
        return self.proof is None

    @property
    def archived_at(self) -> datetime | None:
        """When the recording was stored, if the line says (and says it readably)."""
        try:
            value = datetime.fromisoformat(str(self.fields.get("archived_at")))
        except ValueError:
            return None
        return value if value.tzinfo is not None else None

    def with_manifest(self, manifest_key: str) -> ManifestEntry:
        """The same line, known to sit in ``manifest_key``."""
        return ManifestEntry.from_line(self.fields, manifest_key)

    def describe(self) -> str:
        """``(sip_call_id X, cdr Y)`` for messages."""
        return f"(sip_call_id {self.sip_call_id}, cdr {self.cdr_id})"
