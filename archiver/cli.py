"""The composition root: settings -> adapters -> commands, and exit codes.

Exit codes (contract): 0 success; 1 a fatal error (one line); 2 bad usage or
configuration; 3 finished but some recordings failed permanently; 4 ``get``: no
such call; 5 ``verify``/``get``: missing or corrupt objects.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from archiver import __version__
from archiver.errors import ArchiverError, ConfigError
from archiver.logs import redact, setup_logging
from archiver.settings import Settings, load_settings

log = logging.getLogger("archiver")

EXIT_OK = 0
EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_FAILED_RECORDINGS = 3
EXIT_NOT_FOUND = 4
EXIT_CORRUPT = 5

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print one line and exit 2."""
        self.exit(EXIT_USAGE, f"archiver: {message} (see '{self.prog} --help')\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env-file", metavar="PATH", help="read settings from this file too")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    from archiver.commands import register

    parser = _Parser(prog="archiver", description="Archive call recordings into storage you own.")
    parser.add_argument("--version", action="version", version=f"archiver {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    register(sub, _common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbose=args.verbose)
    handler: Handler = args.handler
    try:
        settings = load_settings(args.env_file)
        setup_logging(verbose=args.verbose, fmt=settings.log_format)
        return asyncio.run(handler(args, settings))
    except ConfigError as exc:
        return _fail(EXIT_USAGE, f"configuration error: {exc}")
    except ArchiverError as exc:
        # Fatal, or a transient failure that outlasted its retries: one line, no traceback.
        return _fail(EXIT_FATAL, str(exc))
    except (KeyboardInterrupt, asyncio.CancelledError):
        # A second SIGINT/SIGTERM: stopped at once (in-flight work is left for the next run).
        return _fail(130, "stopped at once; in-flight recordings will be retried on the next run")


def _fail(code: int, message: str) -> int:
    print(f"archiver: {redact(message)}", file=sys.stderr)
    return code
