"""A manifest line as the archiver writes one (the fields the readers use), for tests."""

from __future__ import annotations


def manifest_line(**overrides: object) -> dict[str, object]:
    """A manifest line, with ``overrides`` (a new field goes after the others)."""
    base: dict[str, object] = {
        "sip_call_id": "sip-1",
        "cdr_id": "cdr-1",
        "provider": "cdr_v2",
        "object_key": "recordings/2021/02/17/sip-1.wav",
        "sha256": "ab" * 32,
        "size": 10,
        "content_type": "audio/wav",
        "call_started_at": "2021-02-17T08:00:00+07:00",
        "direction": "inbound",
        "from_number": "+84 90 123 4567",
        "to_number": "02873001919",
        "extension": "101",
        "agent": "agent101",
    }
    base.update(overrides)
    return base
