"""HTTP behaviour shared by the sources: one session, timeouts, retries, rate limit.

Statuses map onto the error tree by what the caller should do:
401/403 -> AuthenticationError (fatal at once), 429 -> RateLimitedError (honour
Retry-After), 5xx / timeouts / dropped connections -> RetriableError,
404 -> NotFoundError, other 4xx -> FatalError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)

from archiver.errors import (
    AuthenticationError,
    BadResponseError,
    FatalError,
    ListingLimitError,
    NotFoundError,
    RateLimitedError,
    RetriableError,
)
from archiver.failures import ListingLimit
from archiver.settings import SourceSettings

log = logging.getLogger("archiver.http")

USER_AGENT = "archiver/0.1 (+call-recording archiver)"


def redact_url(url: str) -> str:
    """The URL without credentials, query string or fragment: safe for logs and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def error_for_status(status: int, endpoint: str, retry_after: str | None = None) -> Exception:
    """The error an unsuccessful API status means (pure; see the module docstring)."""
    if status in (401, 403):
        return AuthenticationError(
            f"authentication failed: {endpoint} answered HTTP {status}; check the credentials"
        )
    if status == 429:
        return RateLimitedError(
            f"{endpoint} answered HTTP 429 (rate limited)",
            retry_after=parse_retry_after(retry_after),
        )
    if status == 404:
        return NotFoundError(f"{endpoint} answered HTTP 404")
    if status >= 500 or status == 408:
        return RetriableError(f"{endpoint} answered HTTP {status}")
    return FatalError(f"{endpoint} answered HTTP {status}")


def _redirect_refused(status: int, endpoint: str, location: str | None) -> FatalError:
    where = f" to {redact_url(location)}" if location else ""
    return FatalError(
        f"{endpoint} answered HTTP {status} (a redirect{where}); not followed, because the "
        "request carries credentials in its body: point the base URL at the final address"
    )


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, endpoint: str) -> bytes:
    """The whole body, or ListingLimitError once it passes ``limit`` bytes (announced
    or as it streams): a body without end never fills memory."""
    if resp.content_length is not None and resp.content_length > limit:
        raise _too_big(endpoint, limit)
    body = bytearray()
    async for chunk in resp.content.iter_chunked(256 * 1024):
        body += chunk
        if len(body) > limit:
            raise _too_big(endpoint, limit)
    return bytes(body)


def _too_big(endpoint: str, limit: int) -> ListingLimitError:
    return ListingLimitError(
        ListingLimit.BODY,
        f"{endpoint} answered more than ARCHIVER_SOURCE__MAX_BODY ({limit} bytes)",
    )


class BackoffWait:
    """Exponential backoff with full jitter; a server's Retry-After wins (capped)."""

    def __init__(self, initial: float = 0.5, maximum: float = 60.0) -> None:
        self.initial = initial
        self.maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> float:
        """Seconds to sleep before the next attempt."""
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RetriableError) and exc.retry_after is not None:
            return min(exc.retry_after, self.maximum)
        ceiling = min(self.initial * 2 ** (retry_state.attempt_number - 1), self.maximum)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto


def make_session(
    settings: SourceSettings, *, limit: int = 100, limit_per_host: int = 0
) -> aiohttp.ClientSession:
    """The one aiohttp session of a run: connect and read timeouts, connection limits."""
    timeout = aiohttp.ClientTimeout(
        total=None, connect=settings.connect_timeout, sock_read=settings.read_timeout
    )
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    return aiohttp.ClientSession(
        timeout=timeout,
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        raise_for_status=False,
    )


class ApiClient:
    """JSON requests to a provider API with retries, a rate limit and error mapping."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: SourceSettings,
        *,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self._session = session
        self._settings = settings
        self._limiter = AsyncLimiter(settings.rate_limit, 1) if settings.rate_limit > 0 else None
        self._sleep = sleep or asyncio.sleep
        self.requests = 0
        self.retries = 0
        # Since when requests fail (monotonic), and how many attempts failed since.
        self._failing_since: float | None = None
        self._failures = 0

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request (retrying transient failures) and return the decoded JSON."""
        endpoint = f"{method} {redact_url(url)}"
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.max_attempts),
            wait=BackoffWait(maximum=self._settings.max_backoff),
            retry=retry_if_exception_type(RetriableError),
            sleep=self._sleep,
            reraise=True,
            before_sleep=self._log_retry,
        )
        try:
            body = await self._retried(
                retrying, method, url, endpoint, params, json_body, form, headers
            )
        except RetriableError:
            self._failed()
            raise
        self._answered(endpoint)
        return body

    async def _retried(self, retrying: AsyncRetrying, *args: Any) -> Any:
        async for attempt in retrying:
            with attempt:
                return await self._once(*args)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _failed(self) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self._failures += 1

    def _answered(self, endpoint: str) -> None:
        """After a fault: one line saying the provider answers again (the warnings
        during the fault are summarised, see archiver.logs.RepeatFilter)."""
        if self._failing_since is None:
            return
        lasted = time.monotonic() - self._failing_since
        log.info(
            "%s answers again, after %d failed attempt(s) over %.0f s",
            endpoint,
            self._failures,
            lasted,
        )
        self._failing_since, self._failures = None, 0

    def _log_retry(self, retry_state: RetryCallState) -> None:
        self.retries += 1
        self._failed()
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        log.warning("retrying in %.1fs after attempt %d: %s", wait, retry_state.attempt_number, exc)

    async def _once(
        self,
        method: str,
        url: str,
        endpoint: str,
        params: Mapping[str, str | int] | None,
        json_body: Any,
        form: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> Any:
        if self._limiter is not None:
            await self._limiter.acquire()
        self.requests += 1
        # A body may carry credentials (epacific's api_secret), and a 307/308
        # re-posts the body to wherever Location points: such a request follows
        # no redirect. (aiohttp drops the Authorization header itself when a
        # redirect leaves the origin, so a bodiless GET may follow them.)
        has_body = json_body is not None or form is not None
        try:
            # The whole request (connect, send, answer, body) has a deadline of its
            # own: sock_read alone lets a server trickle a byte a minute for ever.
            async with (
                asyncio.timeout(self._settings.request_timeout),
                self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=form,
                    headers=headers,
                    allow_redirects=not has_body,
                ) as resp,
            ):
                if resp.status >= 400:
                    raise error_for_status(resp.status, endpoint, resp.headers.get("Retry-After"))
                if 300 <= resp.status < 400:
                    raise _redirect_refused(resp.status, endpoint, resp.headers.get("Location"))
                body = await _read_capped(resp, self._settings.max_body, endpoint)
                status = resp.status
                content_type = resp.headers.get("Content-Type", "")
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise RetriableError(f"{endpoint} timed out") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise RetriableError(f"{endpoint}: connection failed ({type(exc).__name__})") from None
        try:
            return json.loads(body)
        # ValueError: JSONDecodeError, and also an integer of more than 4300 digits;
        # RecursionError: arrays nested too deep. Both are bodies we cannot read.
        except (UnicodeDecodeError, ValueError, RecursionError):
            ctype = content_type.split(";")[0] or "no content type"
            raise BadResponseError(
                f"{endpoint} answered HTTP {status} with a body that is not JSON ({ctype})"
            ) from None
