"""When a recording is tried again, and the bounds on one transfer."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RetrySettings(BaseModel):
    """When a recording is tried again, and when it is given up."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    initial: float = Field(default=2.0, gt=0)
    maximum: float = Field(default=300.0, gt=0)
    # A recording that 404s soon after its call is "not ready": retried more
    # slowly until this many seconds after the call ended, then failed.
    ready_deadline: float = Field(default=86400.0, gt=0)
    not_ready_initial: float = Field(default=30.0, gt=0)
    not_ready_maximum: float = Field(default=1800.0, gt=0)
    # Attempts a 404 gets before "never became available", whatever the call's
    # age (past the deadline they back off like transient failures; the last
    # one uses a fresh URL from the provider's lookup by id).
    not_ready_min_attempts: int = Field(default=4, ge=1, le=100)


class TransferSettings(BaseModel):
    """Bounds on one recording's transfer: a hostile or broken host cannot hold a
    worker, or fill the storage, for ever."""

    # Seconds one attempt may take, from the request to the stored object.
    deadline: float = Field(default=1800.0, gt=0)
    # Bytes per second a recording must arrive at, measured over each window.
    min_throughput: int = Field(default=1024, ge=0)
    throughput_window: float = Field(default=60.0, gt=0)
    # Largest recording accepted (a call of 10 hours in WAV is about 1 GiB).
    max_size: int = Field(default=2 * 1024**3, ge=1024)
