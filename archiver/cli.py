"""The composition root: settings -> adapters -> commands.

Exit codes and one-line failures live in :mod:`archiver.exits`, a leaf the
commands import too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from archiver import __version__
from archiver.commands import register
from archiver.errors import ArchiverError, ConfigError, UsageError
from archiver.exits import ExitCode, fail, warn
from archiver.logs import setup_logging
from archiver.setting_names import unknown_variables, variables_set
from archiver.settings import Settings, load_settings

log = logging.getLogger("archiver")

# Allocations between two collections of the youngest generation on the hot path
# (Python's default: 700); see hot_path_gc.
_YOUNG_GC_THRESHOLD = 20_000

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print one line and exit 2."""
        self.exit(ExitCode.USAGE, f"archiver: usage error: {message} (see '{self.prog} --help')\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env-file", metavar="PATH", help="read settings from this file too")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line; given ``argv`` whose first word is a command, that command only
    (so only its module is imported: see :mod:`archiver.commands`)."""
    parser = _Parser(prog="archiver", description="Archive call recordings into storage you own.")
    parser.add_argument("--version", action="version", version=f"archiver {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    register(sub, _common, argv[0] if argv else None)
    return parser


def loop_factory(
    args: argparse.Namespace, settings: Settings
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for a command that asks for it (``run``, ``backfill``: the hot path)
    unless ARCHIVER_EVENT_LOOP=asyncio; None: asyncio's own loop."""
    if not getattr(args, "uvloop", False) or settings.event_loop == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - only the commands that run on it pay its import
    except ImportError:
        if settings.event_loop == "uvloop":
            raise ConfigError("ARCHIVER_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def hot_path_gc() -> None:
    """The cyclic garbage collector for ``run`` and ``backfill`` (the hot path).

    What start-up built (modules, settings: hundreds of thousands of objects
    that live as long as the process) is frozen out of every later collection,
    so a collection of the oldest generation walks what the run itself keeps;
    and the youngest generation waits for 20,000 new objects instead of 700
    (almost all of a recording's objects are freed by their reference count).
    Cycles are still collected, a little later.
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(_YOUNG_GC_THRESHOLD, middle, oldest)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    setup_logging(verbose=args.verbose)
    handler: Handler = args.handler
    try:
        for unknown in unknown_variables(variables_set(args.env_file)):
            warn(unknown.message())
        settings = load_settings(args.env_file)
        setup_logging(verbose=args.verbose, fmt=settings.log_format)
        if getattr(args, "uvloop", False):
            hot_path_gc()
        gc.enable()  # off while the modules loaded (archiver.__main__)
        with asyncio.Runner(loop_factory=loop_factory(args, settings)) as runner:
            return runner.run(handler(args, settings))
    except UsageError as exc:
        return fail(ExitCode.USAGE, f"usage error: {exc}")
    except ConfigError as exc:
        return fail(ExitCode.USAGE, f"configuration error: {exc}")
    except ArchiverError as exc:
        # Fatal, or a transient failure that outlasted its retries: one line, no traceback.
        return fail(ExitCode.FATAL, str(exc))
    except (KeyboardInterrupt, asyncio.CancelledError):
        # A second SIGINT/SIGTERM: stopped at once (in-flight work is left for the next run).
        return fail(
            ExitCode.INTERRUPTED,
            "stopped at once; in-flight recordings will be retried on the next run",
        )
