"""Connecting to the PostgreSQL state: the pool, its deadlines, outages, errors without secrets.

The DSN may carry a password (in its user part or as ``?password=``): it is
read here and nowhere else. Every message this module builds names the host,
port and database only, and never chains the driver's exception (whose text or
attributes could quote the DSN).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

import asyncpg

from archiver.errors import ConfigError, StateUnavailableError
from archiver.settings import ENV_PREFIX
from archiver.state.outage import Availability

log = logging.getLogger("archiver.state")

T = TypeVar("T")

# Runs of one operation when the server rolls it back (deadlock, serialization).
ROLLBACK_ATTEMPTS = 3

# What a lost or refused connection raises: the server went away, a socket
# failed, the pool was closed under us, or a deadline passed.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    OSError,
    TimeoutError,
)


def utc(value: datetime) -> datetime:
    """A timestamp as stored: aware, in UTC (a naive one is a bug, as in SQLite)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime given to the state store: {value!r}")
    return value.astimezone(UTC)


def changed(status: str | None) -> int:
    """Rows a statement changed, from its command tag (``UPDATE 3``, ``INSERT 0 1``)."""
    last = (status or "").rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


# At start-up, also: the server refused us (wrong password, no such database:
# PostgresError), or asyncpg's DSN parser refused the URL (ValueError, whose
# message may quote it).
_OPEN_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    asyncpg.PostgresError,
    ValueError,
)


@dataclass(frozen=True)
class Target:
    """Where a DSN points, for messages: never its password."""

    host: str
    port: int
    database: str
    user: str
    # Every spelling of the password in the URL (as written, and decoded): what
    # scrub hides, longest first.
    secrets: tuple[str, ...] = ()

    @classmethod
    def parse(cls, dsn: str) -> Target:
        """The parts of a ``postgresql://`` or ``postgres://`` URL; ConfigError when malformed."""
        try:
            parts = urlsplit(dsn)
            port = parts.port or 5432
        except ValueError:
            # The URL's own text may hold the password: not quoted.
            raise ConfigError(f"{ENV_PREFIX}STATE__URL: not a valid PostgreSQL URL") from None
        query = dict(parse_qsl(parts.query))
        written = [parts.password or ""]
        written += [p.split("=", 1)[1] for p in parts.query.split("&") if p.startswith("password=")]
        secrets = {form for w in written if w for form in (w, unquote(w), unquote_plus(w))}
        return cls(
            host=parts.hostname or query.get("host", "localhost"),
            port=port,
            database=unquote(parts.path.lstrip("/")) or query.get("dbname", "") or "(default)",
            user=unquote(parts.username or "") or query.get("user", ""),
            secrets=tuple(sorted(secrets, key=len, reverse=True)),
        )

    def describe(self) -> str:
        """``database NAME on HOST:PORT``: what messages say about the state."""
        return f"PostgreSQL database {self.database} on {self.host}:{self.port}"

    def scrub(self, text: str) -> str:
        """``text`` with the password (if any) replaced: driver messages are not trusted."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def reason(exc: BaseException, target: Target) -> str:
    """One line on why an operation failed: the exception's kind and its scrubbed message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return target.scrub(f"{name}: {text}" if text else name)


@dataclass(frozen=True)
class PoolConfig:
    """The pool's bounds: how many connections, how long any one operation may take,
    and how long an outage of the server is ridden out."""

    size: int
    timeout: float  # seconds: to connect, to get a connection, and per statement
    # Seconds an operation waits for a server that went away (0: it fails at
    # once); see archiver.state.outage.
    outage: float = 0.0


async def create_pool(dsn: str, target: Target, config: PoolConfig, *, read_only: bool) -> Any:
    """An asyncpg pool of at most ``config.size`` connections, opened and checked.

    ConfigError naming the host and database when the server cannot be reached
    or refuses us (wrong password, no such database).
    """
    settings = {"application_name": "archiver", "timezone": "UTC"}
    if read_only:
        settings["default_transaction_read_only"] = "on"
    # No floor of connections: asyncpg would restore one in the background after
    # a restart, logging each failure with the driver's traceback. Connections are
    # opened on demand, by an operation that rides the outage out.
    pool = None
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=config.size,
            timeout=config.timeout,
            command_timeout=config.timeout,
            server_settings=settings,
        )
        # One connection now: a wrong URL, password or database fails the start.
        async with pool.acquire(timeout=config.timeout):
            pass
    except _OPEN_ERRORS as exc:
        if pool is not None:
            pool.terminate()
        raise ConfigError(
            f"{ENV_PREFIX}STATE__URL: cannot connect to {target.describe()}: {reason(exc, target)}"
        ) from None
    return pool


def transient(exc: BaseException, target: Target) -> str | None:
    """Why ``exc`` means the server is away for now (one line), or None when it is
    another error (a bug, a constraint), which no waiting cures."""
    if isinstance(exc, asyncpg.QueryCanceledError):
        return None  # a statement cancelled by the server is not an outage
    if isinstance(exc, CONNECTION_ERRORS + _AWAY):
        if isinstance(exc, asyncpg.InterfaceError) and not _closed(exc):
            return None  # misuse of the driver, not a lost connection
        return reason(exc, target)
    return None


# The server shutting down or starting up (a restart, a failover); a connection
# the server dropped mid-statement, met again by the rollback of its transaction
# ("cannot switch to state ...; another operation is in progress").
_AWAY: tuple[type[BaseException], ...] = (
    asyncpg.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,
)


def _closed(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "closed" in text or "closing" in text or "connection" in text


class Pool:
    """The store's pool: each operation gets a connection, a deadline, and rides out
    an outage of the server (see :mod:`archiver.state.outage`)."""

    def __init__(self, pool: Any, target: Target, config: PoolConfig) -> None:
        """Wrap an open asyncpg pool (see :func:`create_pool`)."""
        self._pool = pool
        self.target = target
        self.config = config
        self.availability = Availability(target.describe(), config.outage)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection, held for one operation that is not repeated (opening).

        Waiting for a free connection is bounded by the timeout too; a lost
        connection or a passed deadline raises StateUnavailableError.
        """
        started = time.monotonic()
        try:
            async with self._pool.acquire(timeout=self.config.timeout) as conn:
                yield conn
        except CONNECTION_ERRORS as exc:
            raise StateUnavailableError(
                f"state: {self.target.describe()} failed after"
                f" {time.monotonic() - started:.1f} s: {reason(exc, self.target)}"
            ) from None

    async def run(
        self,
        op: Callable[[asyncpg.Connection], Awaitable[T]],
        *,
        transaction: bool = False,
        resolve: Callable[[asyncpg.Connection], Awaitable[T | None]] | None = None,
    ) -> T:
        """``await op(conn)`` on a pooled connection (in a transaction if asked).

        ``op`` is one transaction's worth of work, safe to repeat: it runs again
        when PostgreSQL chose it as a deadlock's victim or a serialization
        failure (statements that update many rows may meet another process's in
        another order; the server rolls one back whole, and running it again is
        the documented answer), and while the server is away, up to the outage
        bound. ``resolve`` tells, after a broken connection, whether ``op``'s
        commit happened (see :meth:`Availability.ride`).
        """

        async def once() -> T:
            for attempt in range(1, ROLLBACK_ATTEMPTS + 1):
                try:
                    return await self._on_connection(op, transaction)
                except asyncpg.TransactionRollbackError as exc:
                    if attempt == ROLLBACK_ATTEMPTS:
                        raise
                    log.info("state: %s; trying again", reason(exc, self.target))
            raise AssertionError("unreachable")

        async def resolved() -> T | None:
            assert resolve is not None
            return await self._on_connection(resolve, False)

        return await self.availability.ride(
            once,
            transient=lambda exc: transient(exc, self.target),
            resolve=None if resolve is None else resolved,
        )

    async def _on_connection(
        self, op: Callable[[asyncpg.Connection], Awaitable[T]], transaction: bool
    ) -> T:
        try:
            async with self._pool.acquire(timeout=self.config.timeout) as conn:
                if not transaction:
                    return await op(conn)
                async with conn.transaction():
                    return await op(conn)
        except Exception as exc:
            if transient(exc, self.target) is not None:
                # The other pooled connections are likely broken too (a restart):
                # replaced on their next use instead of failing one by one.
                await self._pool.expire_connections()
            raise

    async def count(self, sql: str, *args: object) -> int:
        """Run one statement (its own transaction, repeated if rolled back by the
        server, or while the server is away); how many rows it changed."""

        async def execute(conn: asyncpg.Connection) -> int:
            return changed(await conn.execute(sql, *args))

        return await self.run(execute)

    async def fetch(self, sql: str, *args: object) -> list[Any]:
        """The rows of one read (repeated while the server is away)."""

        async def rows(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(sql, *args))

        return await self.run(rows)

    async def fetchval(self, sql: str, *args: object) -> Any:
        """The first value of one read (repeated while the server is away)."""

        async def value(conn: asyncpg.Connection) -> Any:
            return await conn.fetchval(sql, *args)

        return await self.run(value)

    async def close(self) -> None:
        """Close every connection, waiting at most the timeout for operations to end."""
        try:
            await asyncio.wait_for(self._pool.close(), timeout=self.config.timeout)
        except CONNECTION_ERRORS:
            self._pool.terminate()
