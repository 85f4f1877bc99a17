"""Pieces the setting models share: the variables' prefix and value parsers."""

from __future__ import annotations

from urllib.parse import urlsplit

ENV_PREFIX = "ARCHIVER_"


def split_commas(value: object) -> object:
    """A comma-separated string as a list of its non-empty parts; anything else as is."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def http_url(value: str | None) -> str | None:
    """An http(s) URL without its trailing slash; None for an unset or empty value."""
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")
