"""Logging set-up, with secrets redacted from every line."""

from __future__ import annotations

import logging
import re
import sys

# Query strings of signed URLs and bearer tokens never reach a log line.
_PATTERNS = [
    (re.compile(r"(https?://[^\s?#\"']+)\?[^\s\"']*"), r"\1?<redacted>"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1<redacted>"),
    (
        re.compile(
            r"(?i)((?<![\w])(?:api_key|api_secret|token|signature|password)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',}]+"
        ),
        r"\1<redacted>",
    ),
]


def redact(text: str) -> str:
    """``text`` with URL query strings, bearer tokens and key=value secrets masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter that passes every finished line through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        """Format, then redact."""
        return redact(super().format(record))


def setup_logging(verbose: bool = False) -> None:
    """Plain lines on stderr; secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Library chatter (botocore, aiohttp access logs) only when asked for.
    for noisy in ("botocore", "aiobotocore", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
