"""Why a recording was not archived, as a value.

A leaf module: the transfer sets a :class:`FailureKind` on its result, the
state store keeps it next to the reason, and the metrics label, the failure
list and the summary read it. No one recovers a kind by parsing a message.
The value is the metric label (low cardinality: the reasons themselves carry
ids and URLs, which must never become label values).
"""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    """What went wrong with one recording, grouped for people and dashboards."""

    NO_URL = "no_url"  # the CDR had no recording link
    NEVER_AVAILABLE = "never_available"  # 404 until the attempts and the deadline ran out
    HOST_NOT_ALLOWED = "host_not_allowed"  # private/special address, or a scheme not http(s)
    INVALID_URL = "invalid_url"  # a URL the HTTP client cannot request
    TOO_MANY_REDIRECTS = "too_many_redirects"
    HTTP_ERROR = "http_error"  # a status that is not a recording (4xx, or 5xx at the end)
    OBJECT_CONFLICT = "object_conflict"  # another object is already under the key
    BAD_KEY = "bad_key"  # the call's values cannot make a safe object key
    TIMED_OUT = "timed_out"  # no byte for the read timeout
    CONNECTION = "connection"  # refused, reset, TLS
    TRUNCATED = "truncated"  # cut short, longer than announced, or empty
    NOT_AUDIO = "not_audio"  # a body that is not audio (an error page with 200)
    STORAGE = "storage"  # the storage refused the write (a checksum or size mismatch...)
    TOO_LARGE = "too_large"  # over ARCHIVER_TRANSFER__MAX_SIZE
    TOO_SLOW = "too_slow"  # under ARCHIVER_TRANSFER__MIN_THROUGHPUT
    DEADLINE = "deadline"  # longer than ARCHIVER_TRANSFER__DEADLINE
    OTHER = "other"  # recorded by an archiver that did not keep kinds

    @property
    def summary(self) -> str:
        """A few words for a person: the summary groups failures by these."""
        return _SUMMARIES[self]


_SUMMARIES = {
    FailureKind.NO_URL: "no recording URL",
    FailureKind.NEVER_AVAILABLE: "recording never became available",
    FailureKind.HOST_NOT_ALLOWED: "recording host not allowed",
    FailureKind.INVALID_URL: "invalid recording URL",
    FailureKind.TOO_MANY_REDIRECTS: "too many redirects",
    FailureKind.HTTP_ERROR: "HTTP error",
    FailureKind.OBJECT_CONFLICT: "a different object already exists",
    FailureKind.BAD_KEY: "no safe object key",
    FailureKind.TIMED_OUT: "timed out",
    FailureKind.CONNECTION: "connection failed",
    FailureKind.TRUNCATED: "body cut short",
    FailureKind.NOT_AUDIO: "body is not audio",
    FailureKind.STORAGE: "the storage refused the write",
    FailureKind.TOO_LARGE: "recording too large",
    FailureKind.TOO_SLOW: "transfer too slow",
    FailureKind.DEADLINE: "transfer deadline exceeded",
    FailureKind.OTHER: "other",
}


class ListingLimit(StrEnum):
    """Which bound stopped the listing of a window; the value is the metric label."""

    BODY = "max_body"  # an API answer larger than ARCHIVER_SOURCE__MAX_BODY
    ROWS = "max_rows"  # a page of more rows than ARCHIVER_SOURCE__MAX_ROWS
    PAGES = "max_pages"  # more pages in one window than ARCHIVER_SOURCE__MAX_PAGES
    DEADLINE = "list_deadline"  # one window listed for longer than ARCHIVER_SOURCE__LIST_DEADLINE
    REPEAT = "repeated_page"  # a page that repeats an earlier one (A, B, A, B...)
