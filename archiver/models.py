"""Normalized records shared by every layer: what a CDR means once parsed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Direction(StrEnum):
    """Call direction, normalized across providers."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    LOCAL = "local"


class Provider(StrEnum):
    """The source kinds the archiver speaks."""

    CDR_V2 = "cdr_v2"
    EPACIFIC = "epacific"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call detail record, normalized.

    Times are timezone-aware. ``direction`` is None when the provider's value is
    unknown (for instance a numeric code we cannot map); the original value is
    always kept in ``direction_raw`` rather than guessed.
    """

    provider: Provider
    cdr_id: str
    sip_call_id: str
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration: int | None = None
    billsec: int | None = None
    direction: Direction | None = None
    direction_raw: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    extension: str | None = None
    agent: str | None = None
    agent_name: str | None = None
    customer_id: str | None = None
    status: str | None = None
    cause: str | None = None
    recording_url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def has_recording(self) -> bool:
        """True when the provider gave a recording link."""
        return bool(self.recording_url)


_TIME_FIELDS = ("started_at", "answered_at", "ended_at")


def call_to_dict(call: CallRecord) -> dict[str, Any]:
    """A JSON-ready dict of every field (times as ISO 8601 with offset)."""
    out: dict[str, Any] = {}
    for name in CallRecord.__dataclass_fields__:
        value = getattr(call, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, StrEnum):
            value = value.value
        out[name] = value
    return out


def call_from_dict(data: dict[str, Any]) -> CallRecord:
    """The inverse of :func:`call_to_dict`."""
    values = dict(data)
    for name in _TIME_FIELDS:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    values["provider"] = Provider(values["provider"])
    if values.get("direction") is not None:
        values["direction"] = Direction(values["direction"])
    values.setdefault("raw", {})
    return CallRecord(**values)
