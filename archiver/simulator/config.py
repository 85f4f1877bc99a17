"""What a simulated provider serves: its seed, its calls' shape, its faults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

_RATES = (
    "api_5xx",
    "api_429",
    "slow",
    "rec_5xx",
    "rec_reset",
    "rec_truncated",
    "rec_html",
    "not_ready_fraction",
)


@dataclass
class Faults:
    """Faults switched on in the simulated provider.

    Every rate is a probability between 0 and 1, drawn per request from the
    simulator's own seeded random generator, so a run is repeatable when its
    requests arrive in the same order.
    """

    api_5xx: float = 0.0
    """API endpoints answer 500, 502 or 503."""
    api_429: float = 0.0
    """API endpoints answer 429 with ``Retry-After: <retry_after>``."""
    retry_after: int = 1
    """Seconds announced by the 429 answers."""
    slow: float = 0.0
    """Any response is delayed by ``slow_seconds``."""
    slow_seconds: float = 0.5
    drip_seconds: float = 0.0
    """A pause before each 64 KiB chunk of a recording after the first (a slow link)."""
    rec_5xx: float = 0.0
    """Recording downloads answer 503."""
    rec_reset: float = 0.0
    """Recording downloads are chunked and the connection is aborted mid-body."""
    rec_truncated: float = 0.0
    """Recording downloads announce the full Content-Length, send less, then close."""
    rec_html: float = 0.0
    """Recording downloads answer 200 with an HTML error page."""
    not_ready_fraction: float = 0.0
    """Fraction of calls (chosen by seed) whose recording 404s until ready."""
    not_ready_seconds: float = 2.0
    """How long such a recording 404s after the first request for it."""
    signed_ttl: float = 3600.0
    """Lifetime in seconds of signed recording URLs (403 once expired)."""

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
        for name in (
            "retry_after",
            "slow_seconds",
            "drip_seconds",
            "not_ready_seconds",
            "signed_ttl",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @classmethod
    def from_dict(cls, data: Any) -> Faults:
        """Faults from a JSON object; unknown or mistyped fields raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object of Faults fields")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            # bool is an int in Python; a JSON true is a mistake here, not a 1.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            values[name] = int(value) if name == "retry_after" else float(value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass
class SimConfig:
    """The seeded world a simulator serves.

    Two simulators with equal configs serve the same calls with the same
    recording bytes.
    """

    seed: int = 1
    calls: int = 50
    """Calls generated at start (more can arrive later: ``Simulator.add_calls``)."""
    start: datetime = field(
        default_factory=lambda: datetime(2021, 2, 17, 8, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    )
    """The earliest call start; a naive value is read in ``timezone``."""
    span: timedelta = timedelta(hours=6)
    """Calls' start times are spread over [start, start + span)."""
    timezone: str = "Asia/Ho_Chi_Minh"
    """Zone of the naive timestamps the APIs read and write."""
    # Not secrets: the simulator's well-known demo credentials, printed at start.
    token: str = "sim-token"  # noqa: S105
    """cdr_v2 Bearer token."""
    api_key: str = "sim-key"
    """epacific api_key."""
    api_secret: str = "sim-secret"  # noqa: S105
    """epacific api_secret."""
    mapping: Literal["default", "flex", "mixed"] = "mixed"
    """cdr_v2 record shape; ``mixed`` picks one per record, by seed."""
    paging: Literal["pagination", "scroll"] = "pagination"
    """cdr_v2 paging: honour limit/offset, or fixed pages of 10 with a cursor."""
    shift_pages: bool = False
    """cdr_v2 quirk: a page asked at offset > 0 starts at offset - 1.

    A client stepping its offset by the page size sees one record twice (the
    first two pages overlap); one following the scroll cursor, which counts
    from the shifted start, sees every page open with the previous page's last
    record. Either way the listing ends on a short page: when the total is a
    multiple of the page size, the last record only comes at offset == total,
    and an exhausted scroll cursor keeps pointing at it.
    """
    recording_fraction: float = 0.8
    """Fraction of calls that have a recording."""
    min_size: int = 40_000
    max_size: int = 2_000_000
    fixed_size: int | None = None
    """If set, every recording is exactly this many bytes (benchmarks)."""
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        if self.calls < 0:
            raise ValueError("calls must not be negative")
        if not 0.0 <= self.recording_fraction <= 1.0:
            raise ValueError("recording_fraction must be between 0 and 1")
        if not 0 < self.min_size <= self.max_size:
            raise ValueError("need 0 < min_size <= max_size")
        if self.fixed_size is not None and self.fixed_size <= 0:
            raise ValueError("fixed_size must be positive")
        if self.span <= timedelta(0):
            raise ValueError("span must be positive")
        ZoneInfo(self.timezone)  # fail here, not on the first request

    @property
    def tz(self) -> ZoneInfo:
        """The provider's time zone."""
        return ZoneInfo(self.timezone)
