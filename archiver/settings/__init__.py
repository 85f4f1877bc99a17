"""Settings, read once at the edge (environment, `.env`, `--env-file`).

Each component receives its own sub-model; nothing else reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from archiver.errors import ConfigError
from archiver.settings._servers import ConsoleSettings, ServiceSettings
from archiver.settings._source import EPACIFIC_DEFAULT_BASE_URL, SourceSettings, require_source
from archiver.settings._state import StateSettings
from archiver.settings._storage import DEFAULT_KEY_TEMPLATE, StorageSettings
from archiver.settings._timestamp import TimestampSettings
from archiver.settings._transfer import RetrySettings, TransferSettings
from archiver.settings._values import ENV_PREFIX

__all__ = [
    "DEFAULT_KEY_TEMPLATE",
    "ENV_PREFIX",
    "EPACIFIC_DEFAULT_BASE_URL",
    "ConsoleSettings",
    "RetrySettings",
    "ServiceSettings",
    "Settings",
    "SourceSettings",
    "StateSettings",
    "StorageSettings",
    "TimestampSettings",
    "TransferSettings",
    "load_settings",
    "require_source",
]


class Settings(BaseSettings):
    """All of the archiver's settings."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # An empty value (as in a copied settings.example.env) means "use the default".
        env_ignore_empty=True,
    )

    source: SourceSettings = Field(default_factory=SourceSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    concurrency: int = Field(default=16, ge=1, le=512)
    # Seconds a claimed recording stays with its process without a heartbeat.
    lease: float = Field(default=120.0, ge=3)
    # run replicas: seconds the leader role stays with a replica that stopped
    # renewing it (renewed every third of it); also the lease of the manifest
    # writer's role and of a backfill window's listing.
    leader_lease: float = Field(default=30.0, ge=3)
    poll_interval: float = Field(default=10.0, gt=0)
    lookback: float = Field(default=7200.0, ge=0)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    # The backfill lists its range in windows of this many seconds; each
    # completed window is remembered, so a re-run skips it.
    window: float = Field(default=3600.0, ge=60)
    # Seconds in-flight transfers get to finish after SIGINT/SIGTERM.
    grace: float = Field(default=20.0, ge=0)
    # Manifest batches: at most this many lines per object; a line waits at most
    # manifest_interval seconds (counted from the first line since the last write).
    manifest_batch: int = Field(default=1000, ge=1, le=100_000)
    manifest_interval: float = Field(default=10.0, gt=0)
    # Backfill: how long to wait, after listing, for retries that are not due yet.
    backfill_max_wait: float = Field(default=600.0, ge=0)
    # Connections to one recording host at once.
    per_host_connections: int = Field(default=8, ge=1, le=512)
    # Who retrieves (get, search exports, holds), for the audit trail; empty: OS user@host.
    operator: str | None = None
    # run: polls stay this many seconds behind now. 0 by default: a CDR written
    # late changes its minute's count, so the next poll lists it anyway.
    settle: float = Field(default=0.0, ge=0)
    # run: every this many seconds a sweep re-lists, in full, the calls that started
    # within ``longest_call`` seconds (the longest call you expect; at least the
    # lookback), and asks the source again about up to ``sweep_lookups`` recordings
    # that may still come (no URL yet, or never available) until the ready deadline.
    sweep_interval: float = Field(default=600.0, gt=0)
    longest_call: float = Field(default=14400.0, ge=0)
    sweep_lookups: int = Field(default=100, ge=0, le=10_000)
    # Log lines: json, text, or auto (text on a terminal, JSON lines otherwise).
    log_format: Literal["auto", "json", "text"] = "auto"
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    timestamp: TimestampSettings = Field(default_factory=TimestampSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)


def _variable(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def load_settings(env_file: str | Path | None = None) -> Settings:
    """Read the settings, or raise ConfigError naming each bad variable.

    Messages name the variable and the problem, never the value (it may be a secret).
    """
    if env_file is not None and not Path(env_file).is_file():
        raise ConfigError(f"--env-file: no such file: {env_file}")
    try:
        if env_file is not None:
            return Settings(_env_file=env_file)
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            loc = tuple(p for p in err["loc"] if not isinstance(p, int))
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{_variable(loc)}: {msg}")
        raise ConfigError("; ".join(problems)) from None
