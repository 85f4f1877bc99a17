"""Logging set-up, with secrets redacted from every line."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

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


class LiveConsole(Protocol):
    """What a live display (rich's Console under a Progress) offers to print above it."""

    def print(self, *objects: Any, soft_wrap: bool = ..., markup: bool = ...) -> None:
        """Print above the live display."""


_live: list[LiveConsole] = []


@contextmanager
def through_live_display(console: LiveConsole) -> Iterator[None]:
    """While a progress bar is shown, log lines are printed by its console: above
    the bar, whole (never wrapped into it nor cut by a refresh)."""
    _live.append(console)
    try:
        yield
    finally:
        _live.remove(console)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each line, or through
    the live display's console while one is shown (:func:`through_live_display`).

    A live progress bar (rich) swaps ``sys.stderr`` for a writer that prints
    above the bar; a handler holding the original stream would break the bar
    with every log line.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        """One line: through the live display if one is shown, else to stderr."""
        if not _live:
            super().emit(record)
            return
        try:
            line = self.format(record)
            # soft_wrap: a long line stays one line (the terminal folds it), never
            # cut at the console's width between the bar's redraws.
            _live[-1].print(line, soft_wrap=True, markup=False)
        except Exception:  # noqa: BLE001 (logging's own rule: a failed line is reported, not raised)
            self.handleError(record)

    @property
    def stream(self) -> Any:
        """The current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        # StreamHandler.__init__ and setStream assign it; the current stderr always wins.
        pass


# ``extra=EACH`` on a warning that must never be summarised away (each is an item
# lost, not one more sign of a fault going on).
EACH: dict[str, object] = {"each": True}


@dataclass
class _Repeats:
    """One warning's repeats: since when it is seen, when it was last shown, how many hidden."""

    first: float
    last: float
    shown: float
    hidden: int = 0


class RepeatFilter(logging.Filter):
    """The same warning, again and again while a fault lasts, is shown once, then
    summarised every ``every`` seconds ("... (12 more like it in 60 s)").

    "The same" is the same logger, message and non-numeric arguments: a retry's
    wait and attempt number change, its error does not. One quiet for ``forget``
    seconds starts again (shown at once). Bounded: at most ``MAX_KEYS`` kinds are
    remembered. Records with a traceback, and those logged with ``extra=EACH``,
    always pass.
    """

    MAX_KEYS = 256

    def __init__(
        self,
        every: float = 60.0,
        forget: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.every = every
        self.forget = forget
        self.clock = clock
        self._seen: dict[tuple[str, str, tuple[str, ...]], _Repeats] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass the first of a kind and a summary every ``every`` seconds; hide the rest."""
        if record.levelno < logging.WARNING or record.exc_info or getattr(record, "each", False):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        kept = tuple(str(a) for a in args if not isinstance(a, int | float))
        # A line about another recording (its context fields) is another line.
        kept += tuple(str(getattr(record, name, "")) for name in CONTEXT_FIELDS)
        key = (record.name, str(record.msg), kept)
        now = self.clock()
        seen = self._seen.get(key)
        if seen is None or now - seen.last > self.forget:
            if len(self._seen) >= self.MAX_KEYS:
                del self._seen[min(self._seen, key=lambda k: self._seen[k].last)]
            self._seen[key] = _Repeats(first=now, last=now, shown=now)
            return True
        seen.last = now
        if now - seen.shown < self.every:
            seen.hidden += 1
            return False
        if seen.hidden:
            # Appended to the format string: escape it for %-formatting.
            note = f" ({seen.hidden} more like it in the last {now - seen.shown:.0f} s, "
            note += f"first {now - seen.first:.0f} s ago)"
            record.msg = str(record.msg) + note.replace("%", "%%")
        seen.shown, seen.hidden = now, 0
        return True


def setup_logging(verbose: bool = False, fmt: str = "auto") -> None:
    """Log lines on stderr, secrets redacted: text on a terminal, JSON lines otherwise
    (``fmt`` "json" or "text" forces one)."""
    handler = StderrHandler()
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    if use_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not verbose:
        # -v shows every retry; by default a fault lasting minutes is a few lines.
        handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Library chatter (botocore, aiohttp access logs) only when asked for.
    for noisy in ("botocore", "aiobotocore", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
