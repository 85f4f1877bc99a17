"""Logging set-up, with secrets redacted from every line."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from archiver.timeutil import utc_text

# Query strings of signed URLs, credentials in a URL's authority (user:pass@)
# and bearer tokens never reach a log line.
_PATTERNS = [
    # The authority is what follows "//" up to the first "/", "?" or "#": an "@"
    # there ends the userinfo (an "@" later, in a path such as a sip_call_id, does not).
    (re.compile(r"(//)[^\s/?#@\"']*@"), r"\1<redacted>@"),
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


# Fields a log call may attach with ``extra=``; JSON lines carry them as keys.
CONTEXT_FIELDS = ("sip_call_id", "cdr_id", "object_key")


class JsonFormatter(logging.Formatter):
    """One JSON object per line (for log collectors), secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        payload: dict[str, object] = {
            "time": utc_text(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                payload[name] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, ensure_ascii=False, default=str))


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each line.

    A live progress bar (rich) swaps ``sys.stderr`` for a writer that prints
    above the bar; a handler holding the original stream would break the bar
    with every log line.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        """The current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        # StreamHandler.__init__ and setStream assign it; the current stderr always wins.
        pass


def setup_logging(verbose: bool = False, fmt: str = "auto") -> None:
    """Log lines on stderr, secrets redacted: text on a terminal, JSON lines otherwise
    (``fmt`` "json" or "text" forces one)."""
    handler = StderrHandler()
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    if use_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Library chatter (botocore, aiohttp access logs) only when asked for.
    for noisy in ("botocore", "aiobotocore", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
