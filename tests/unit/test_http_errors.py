from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from archiver.errors import (
    AuthenticationError,
    FatalError,
    NotFoundError,
    RateLimitedError,
    RetriableError,
)
from archiver.http import BackoffWait, error_for_status, parse_retry_after, redact_url


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (429, RateLimitedError),
        (404, NotFoundError),
        (500, RetriableError),
        (502, RetriableError),
        (503, RetriableError),
        (408, RetriableError),
        (400, FatalError),
        (422, FatalError),
    ],
)
def test_status_mapping(status, kind):
    err = error_for_status(status, "GET http://api/v2/cdr")
    assert type(err) is kind
    assert "GET http://api/v2/cdr" in str(err)
    assert str(status) in str(err)


def test_auth_message_says_authentication_failed():
    assert "authentication failed" in str(error_for_status(401, "GET x"))


def test_retry_after_seconds_and_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2021, 2, 17, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 17 Feb 2021 10:00:05 GMT", now) == 5.0
    err = error_for_status(429, "GET x", "7")
    assert isinstance(err, RateLimitedError)
    assert err.retry_after == 7.0


def _state(attempt: int, exc: BaseException | None) -> SimpleNamespace:
    outcome = SimpleNamespace(exception=lambda: exc)
    return SimpleNamespace(attempt_number=attempt, outcome=outcome)


def test_backoff_grows_with_jitter_and_is_capped():
    wait = BackoffWait(initial=1.0, maximum=10.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 10.0), (20, 10.0)]:
        for _ in range(20):
            value = wait(_state(attempt, RetriableError("x")))  # type: ignore[arg-type]
            assert ceiling / 2 <= value <= ceiling


def test_retry_after_wins_but_is_capped():
    wait = BackoffWait(initial=1.0, maximum=10.0)
    assert wait(_state(1, RateLimitedError("x", retry_after=4))) == 4  # type: ignore[arg-type]
    assert wait(_state(1, RateLimitedError("x", retry_after=400))) == 10  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://user:pw@api.example.vn:8443/v2/cdr?token=abc#x",
            "https://api.example.vn:8443/v2/cdr",
        ),
        ("http://h/signed/a.mp3?expires=1&signature=deadbeef", "http://h/signed/a.mp3"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected
