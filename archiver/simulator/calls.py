"""The simulated calls: who called whom, when, and what recording it left."""

from __future__ import annotations

import bisect
import functools
import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from archiver.simulator.audio import BYTES_PER_SECOND, RecordingBytes
from archiver.simulator.config import SimConfig

# extension -> (username, first name, middle name, last name); Vietnamese names
# put the family name last in these APIs' fields, like the seed's "A Van Nguyen".
AGENTS: dict[str, tuple[str, str, str, str]] = {
    "100": ("agent100", "Thanh", "Văn", "Nguyễn"),
    "101": ("agent101", "Lan", "Thị", "Trần"),
    "102": ("agent102", "Hùng", "Quốc", "Lê"),
    "103": ("agent103", "Mai", "Thị", "Phạm"),
    "104": ("agent104", "Dũng", "Văn", "Hoàng"),
    "105": ("agent105", "Hương", "Thu", "Vũ"),
    "106": ("agent106", "Minh", "Đức", "Đặng"),
}
HOTLINES = ("19001919", "02873001919")
_MOBILE_PREFIXES = ("090", "091", "098", "097", "086", "088", "032", "035", "077", "070")

OUTCOMES = ("answered", "busy", "no-answered", "cancel", "not-available")
"""Call outcomes, spelled as the Flex mapping's status."""


@dataclass(frozen=True)
class SimCall:
    """One simulated call, the truth both provider APIs render in their shapes.

    ``size`` is 0 when the call has no recording. The recording's bytes are a
    pure function of (seed, index).
    """

    index: int
    cdr_id: str
    sip_call_id: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    duration: int
    billsec: int
    direction: str
    from_number: str
    to_number: str
    extension: str
    agent: str
    has_recording: bool
    fmt: Literal["wav", "mp3"]
    size: int
    url_kind: Literal["direct", "redirect", "signed"]
    outcome: str = "answered"
    customer_id: str = ""
    app: str = "dial"
    seed: int = 1

    @property
    def ext(self) -> str:
        """The recording's file extension."""
        return self.fmt

    @property
    def content_type(self) -> str:
        """The recording's media type."""
        return "audio/wav" if self.fmt == "wav" else "audio/mpeg"

    @property
    def filename(self) -> str:
        """``{cdr_id}.{ext}``, the last segment of the recording's URL."""
        return f"{self.cdr_id}.{self.ext}"

    @property
    def agent_name(self) -> str:
        """The agent's display name ("Thanh Nguyễn"), or "" for robot calls."""
        names = AGENTS.get(self.extension)
        return f"{names[1]} {names[3]}" if names and self.agent else ""

    @functools.cached_property
    def recording(self) -> RecordingBytes:
        """Range access to the recording's bytes."""
        return RecordingBytes(self.seed, self.index, self.fmt, self.size, f"call {self.cdr_id}")

    @functools.cached_property
    def _digest(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.recording.iter_chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def sha256(self) -> str:
        """Hex SHA-256 of the recording bytes (streamed once, then cached)."""
        return self._digest

    def content(self) -> bytes:
        """The whole recording in memory: for tests with small files only."""
        return self.recording.read()

    def iter_bytes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The recording's bytes [start, end) in 64 KiB chunks."""
        return self.recording.iter_chunks(start, end)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_call(config: SimConfig, index: int, started_at: datetime) -> SimCall:
    """The call number ``index`` of ``config.seed``, starting at ``started_at``.

    Everything but the start time comes from (seed, index) alone. Every draw is
    made whatever the branch, so changing one probability in the config does
    not reshuffle the rest of a call.
    """
    rng = random.Random(f"sim-call:{config.seed}:{index}")
    cdr_id = _uuid(rng)
    sip_uuid = _uuid(rng)
    sip_at_host = rng.random() < 0.2
    host = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    direction = rng.choices(("inbound", "outbound", "local"), weights=(45, 45, 10))[0]
    app_roll = rng.random()
    extension = rng.choice(sorted(AGENTS))
    other_extension = rng.choice(sorted(AGENTS))
    customer = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10_000_000):07d}"
    hotline = rng.choice(HOTLINES)
    has_recording = rng.random() < config.recording_fraction
    answered_anyway = rng.random() < 0.3
    failure = rng.choice(OUTCOMES[1:])
    fmt: Literal["wav", "mp3"] = "wav" if rng.random() < 0.7 else "mp3"
    kind_roll = rng.random()
    drawn_size = rng.randint(config.min_size, config.max_size)
    unrecorded_talk = rng.randint(5, 300)
    time_to_answer = rng.randint(2, 20)
    ring_time = rng.randint(5, 40)
    customer_id = f"KH{rng.randint(1, 9999)}"

    sip_call_id = f"{sip_uuid.replace('-', '')}@{host}" if sip_at_host else sip_uuid
    app = "dial"
    if direction == "outbound" and app_roll < 0.15:
        app = "autocall"
    elif direction == "outbound" and app_roll < 0.25:
        app = "autodialer"
    agent = AGENTS[extension][0]
    if app == "autocall":
        # A robot call: no agent, no extension, like the seed's first sample.
        extension, agent = "", ""
    if direction == "inbound":
        from_number, to_number = customer, hotline
    elif direction == "outbound":
        from_number, to_number = hotline, customer
    else:
        from_number, to_number = extension, other_extension

    answered = has_recording or answered_anyway
    size = 0
    if has_recording:
        size = config.fixed_size if config.fixed_size is not None else drawn_size
        if fmt == "wav" and config.fixed_size is None:
            size -= size % 2  # whole 16-bit samples
        billsec = max(1, round(size / BYTES_PER_SECOND))
    else:
        billsec = unrecorded_talk if answered else 0
    answered_at = started_at + timedelta(seconds=time_to_answer) if answered else None
    if answered_at is not None:
        ended_at = answered_at + timedelta(seconds=billsec)
        duration = time_to_answer + billsec
    else:
        ended_at = started_at + timedelta(seconds=ring_time)
        duration = ring_time
    url_kind: Literal["direct", "redirect", "signed"] = (
        "direct" if kind_roll < 0.6 else "redirect" if kind_roll < 0.8 else "signed"
    )
    return SimCall(
        index=index,
        cdr_id=cdr_id,
        sip_call_id=sip_call_id,
        started_at=started_at,
        answered_at=answered_at,
        ended_at=ended_at,
        duration=duration,
        billsec=billsec,
        direction=direction,
        from_number=from_number,
        to_number=to_number,
        extension=extension,
        agent=agent,
        has_recording=has_recording,
        fmt=fmt,
        size=size,
        url_kind=url_kind,
        outcome="answered" if answered else failure,
        customer_id=customer_id,
        app=app,
        seed=config.seed,
    )


def initial_calls(config: SimConfig) -> list[SimCall]:
    """The ``config.calls`` first calls, spread over the span, sorted by start."""
    return list(iter_calls(config))


def iter_calls(
    config: SimConfig, since: datetime | None = None, until: datetime | None = None
) -> Iterator[SimCall]:
    """The calls of :func:`initial_calls`, one at a time in listing order, only those
    started in [``since``, ``until``) when given.

    Made one at a time, so a benchmark can write or serve millions of them (or a
    month of them) without holding them all; the same calls, in the same order.
    """
    start = config.start
    if start.tzinfo is None:
        start = start.replace(tzinfo=config.tz)
    start = start.astimezone(config.tz).replace(microsecond=0)
    span_seconds = max(int(config.span.total_seconds()), 1)
    rng = random.Random(f"sim-times:{config.seed}")
    # Whole seconds: the APIs print seconds, so a call's time survives the round trip.
    offsets = sorted(rng.randrange(span_seconds) for _ in range(config.calls))
    low = 0 if since is None else max(0, int((since - start).total_seconds()) - 1)
    high = span_seconds if until is None else int((until - start).total_seconds()) + 1
    first = bisect.bisect_left(offsets, low)
    same_second: list[SimCall] = []
    for index in range(first, len(offsets)):
        offset = offsets[index]
        if offset > high:
            break
        call = make_call(config, index, start + timedelta(seconds=offset))
        if same_second and call.started_at != same_second[0].started_at:
            yield from _within(sorted(same_second, key=call_order), since, until)
            same_second = []
        same_second.append(call)
    yield from _within(sorted(same_second, key=call_order), since, until)


def _within(calls: list[SimCall], since: datetime | None, until: datetime | None) -> list[SimCall]:
    return [
        c
        for c in calls
        if (since is None or c.started_at >= since) and (until is None or c.started_at < until)
    ]


def call_order(call: SimCall) -> tuple[datetime, str]:
    """The providers' listing order: start time, then CDR id."""
    return call.started_at, call.cdr_id
