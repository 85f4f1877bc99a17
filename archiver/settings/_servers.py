"""The HTTP servers the archiver runs: the daemon's endpoints and the auditor's console."""

from __future__ import annotations

import re
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from archiver.settings._values import split_commas


class ServiceSettings(BaseModel):
    """The daemon's HTTP endpoints: /healthz, /readyz, /metrics."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    # Seconds between the readiness probes of the storage.
    probe_interval: float = Field(default=15.0, gt=0)
    # /readyz fails when the source or the storage was last reached longer ago
    # than this many seconds.
    ready_timeout: float = Field(default=180.0, gt=0)
    # /healthz fails when the pipeline's loop has not moved for this long.
    stuck_after: float = Field(default=120.0, gt=0)


class ConsoleSettings(BaseModel):
    """The auditor's web console (``archiver console``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    # The local SQLite index of the manifests (a cache: rebuilt from the storage at will).
    index_path: Path = Path("./archiver-console.sqlite3")
    # ``get``'s id index in that file lists every manifest key again when its last full
    # listing is older than this (between, it asks only for the chain's new links; an
    # id not found is always looked for in a full listing); 0: every time.
    index_full_listing_hours: float = Field(default=24.0, ge=0)
    # Worker processes that parse and pack the lines of a build of the console's index
    # from nothing, past its first 50,000 lines; 0: in the console's own process. Each
    # takes a core and about 60 MiB: two on two free cores halve the build's wall time
    # for a fifth more CPU (docs/performance.md).
    index_workers: int = Field(default=0, ge=0, le=16)
    # Local accounts, one ``name:role:argon2-hash`` a line (``archiver console-user``).
    users_file: Path = Path("./archiver-console-users")
    # Whether the console asks for a reason before a play, a download, an export or a hold.
    reason: Literal["required", "optional", "off"] = "required"
    # Identity from an authenticating reverse proxy: this header, only from these addresses.
    proxy_header: str | None = None
    proxy_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The role of a proxy-authenticated user who is not in the users file.
    proxy_role: Literal["viewer", "listener", "exporter", "officer"] = "viewer"
    # Minutes a session lasts from sign-in.
    session_minutes: float = Field(default=480.0, gt=0)
    # Secure cookies need HTTPS (browsers also accept them from http://localhost).
    cookie_secure: bool = True
    language: Literal["vi", "en"] = "vi"
    page_size: int = Field(default=50, ge=1, le=1000)
    # Calls one export ZIP may hold.
    export_limit: int = Field(default=500, ge=1, le=100_000)
    # Bytes of recordings one export ZIP may hold (2 GiB).
    export_max_bytes: int = Field(default=2 * 1024**3, ge=1)
    # Exports one user may have streaming at once.
    exports_per_user: int = Field(default=1, ge=1, le=100)
    # Seconds between looks for new manifest (and audit) objects.
    refresh_interval: float = Field(default=60.0, gt=0)
    # Failed sign-ins allowed per address and per user name in 15 minutes.
    login_attempts: int = Field(default=5, ge=1, le=1000)
    # A disposition request must be approved by another signed-in officer than the one
    # who made it (two-person rule): deleting records cannot be undone.
    disposal_two_person: bool = True

    @field_validator("proxy_addresses", mode="before")
    @classmethod
    def _addresses(cls, value: object) -> object:
        return split_commas(value)

    @field_validator("proxy_addresses")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("proxy_header", mode="before")
    @classmethod
    def _header(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9-]+", value.strip()):
            raise ValueError("must be an HTTP header name such as X-Forwarded-User")
        return value.strip() if isinstance(value, str) else value
