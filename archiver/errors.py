"""The archiver's errors, grouped by what the caller should do about them.

    ArchiverError
     ├── ConfigError            bad settings or usage: fix and re-run (exit 2)
     │    ├── UsageError            a command-line mistake (an option's value...)
     │    ├── ListenError           an address to serve on is taken or not ours
     │    └── NoArchiveError        the storage holds no manifest at all: wrong settings?
     ├── FatalError             stop now: retrying cannot help
     │    ├── AuthenticationError   the provider refused our credentials
     │    ├── StorageError          the storage refused or cannot be reached
     │    │    └── PlantedLinkError     a local key's folder is a symbolic link
     │    ├── StateUnavailableError the state database went away or passed its deadline
     │    └── PagingError           the provider's paging went wrong (repeated page...)
     │         └── ListingLimitError  a bound on a listing was hit (body, rows, pages, time)
     ├── RetriableError         transient: try again later, with backoff
     │    ├── RateLimitedError      429, with the server's Retry-After
     │    ├── BadResponseError      a body that is not what the endpoint promises
     │    └── TimestampUnavailableError  the time-stamping authority cannot be reached
     └── SkippableError         this one item is bad: record why and go on
          ├── BadRecordError        a CDR that cannot be parsed
          ├── NotFoundError         the item does not exist (404 on a lookup)
          └── TimestampInvalidError a timestamp token that does not verify

Messages never carry secrets: URLs are shown without their query strings.
"""

from __future__ import annotations

import os

from archiver.failures import ListingLimit


class ArchiverError(Exception):
    """Base of every error the archiver raises on purpose."""


class ConfigError(ArchiverError):
    """Settings or command-line usage that cannot work."""


class UsageError(ConfigError):
    """A command-line mistake: an option or argument that cannot work (shown as "usage error")."""


class ListenError(ConfigError):
    """A server cannot listen where it is told to (the port is in use, the address not ours)."""

    def __init__(self, host: str, port: int, exc: OSError, setting: str) -> None:
        # asyncio's own strerror repeats the address; the errno's text says it plainly.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        super().__init__(f"cannot listen on {host}:{port}: {reason} (set {setting})")


class NoArchiveError(ConfigError):
    """The storage holds no manifest at all: most likely the settings name the wrong place."""


class FatalError(ArchiverError):
    """An error that retrying cannot fix."""


class AuthenticationError(FatalError):
    """The provider answered 401/403 to our credentials."""


class StorageError(FatalError):
    """The storage cannot be reached, or refuses what we ask."""


class PlantedLinkError(StorageError):
    """A folder on the way to a local key is a symbolic link (planted: the archiver makes none).

    Fatal for a write; ``verify`` and ``get`` report it as a problem of that key.
    """

    def __init__(self, where: str, key: str, folder: str) -> None:
        super().__init__(
            f"{where}: refusing {key}: {folder} is a symbolic link "
            "(the local store follows none inside its directory)"
        )
        self.folder = folder


class StateUnavailableError(FatalError):
    """The state database (PostgreSQL) was lost or did not answer in time, mid-run.

    The run stops; what it held is taken over when its leases run out.
    """


class PagingError(FatalError):
    """The provider's paging is inconsistent (a page repeated, no progress)."""


class ListingLimitError(PagingError):
    """A listing stopped by one of its bounds; ``limit`` says which (a metric label)."""

    def __init__(self, limit: ListingLimit, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class RetriableError(ArchiverError):
    """A transient failure: the same request may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(RetriableError):
    """HTTP 429: the server asked us to slow down."""


class BadResponseError(RetriableError):
    """A response body that is not the expected JSON (or not the expected shape)."""


class TimestampUnavailableError(RetriableError):
    """The time-stamping authority is down, slow, or answered an HTTP error."""


class SkippableError(ArchiverError):
    """One item cannot be processed; the run goes on without it."""


class BadRecordError(SkippableError):
    """A CDR whose fields cannot be understood."""


class NotFoundError(SkippableError):
    """The asked-for item does not exist."""


class TimestampInvalidError(SkippableError):
    """A timestamp token that does not prove what it should (bytes, nonce, signature, chain)."""
