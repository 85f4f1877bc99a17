"""The state database: an SQLite file or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from archiver.errors import ConfigError
from archiver.private_files import DEFAULT_FILE_MODE, MODE_PATTERN, parse_mode
from archiver.settings._values import ENV_PREFIX


class StateSettings(BaseModel):
    """The state database: an SQLite file (the default), or PostgreSQL for replicas."""

    url: str = "./archiver-state.sqlite3"
    # Mode of a new database file (its -wal and -shm follow it) and of its new folder.
    file_mode: str = Field(default=DEFAULT_FILE_MODE, pattern=MODE_PATTERN)
    # PostgreSQL only: connections per process. Each operation holds one for a
    # short statement (workers wait on the network, not the database), so a few
    # serve the default 16 workers; replicas x this must stay under the server's
    # max_connections (100 by default).
    pool_size: int = Field(default=8, ge=1, le=100)
    # PostgreSQL only: seconds to connect, to wait for a pooled connection, and
    # for any one statement, before the operation fails.
    timeout: float = Field(default=30.0, gt=0, le=3600)
    # Seconds an outage of the state database is ridden out: a PostgreSQL restart
    # or failover, a network blip, an SQLite file on a full or read-only disk.
    # Operations wait and try again (each attempt within ``timeout``); past this,
    # ``run`` exits 1. Counted from the outage's first failure.
    outage: float = Field(default=300.0, ge=0, le=86400)

    @property
    def file_mode_bits(self) -> int:
        """``file_mode`` as permission bits."""
        return parse_mode(self.file_mode)

    @property
    def is_postgres(self) -> bool:
        """Whether the URL names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
        return self.url.startswith(("postgresql://", "postgres://"))

    @property
    def path(self) -> Path:
        """The SQLite file the URL names (ConfigError for any other URL)."""
        if self.url.startswith("sqlite:///"):
            return Path(self.url[len("sqlite:///") :])
        if "://" in self.url:
            raise ConfigError(
                f"{ENV_PREFIX}STATE__URL: must be sqlite:///PATH, a path,"
                " or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
            )
        return Path(self.url)

    def validate_url(self) -> None:
        """ConfigError naming the variable when the URL is neither SQLite nor PostgreSQL."""
        if not self.is_postgres:
            _ = self.path
