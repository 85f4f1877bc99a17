"""One module per group of commands; ``register`` adds them to the parser.

A command line names one command, and only the module that registers it is
imported: the others pull in aiohttp's server, Jinja2, rich and the rest,
which ``archiver get`` would otherwise pay for on every start (a second on a
loaded machine). ``archiver --help`` (no command named) imports them all.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from archiver.commands.helptext import explain

# Each command's module, in the order ``archiver --help`` lists them.
MODULES: dict[str, str] = {
    "backfill": "backfill",
    "run": "run",
    "check": "check",
    "init-storage": "init_storage",
    "demo": "demo",
    "status": "status",
    "retry": "status",
    "simulate": "simulate",
    "get": "get",
    "verify": "verify",
    "reindex": "verify",
    "seal": "verify",
    "rollup": "rollup",
    "dedupe": "dedupe",
    "dispose": "dispose",
    "subject": "subject",
    "witness": "witness",
    "reconcile": "reconcile",
    "search": "search",
    "export": "export",
    "hold": "hold",
    "console": "console",
    "console-user": "console",
    "audit": "audit",
    "case": "case",
}


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
    command: str | None = None,
) -> None:
    """Add ``command`` to ``sub``, or every command when it is None or not one of them."""
    wanted = [MODULES[command]] if command in MODULES else MODULES.values()
    for name in dict.fromkeys(wanted):
        importlib.import_module(f"archiver.commands.{name}").register(sub, common)
    explain(sub)
