"""One module per group of commands; ``register`` adds them all to the parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from archiver.commands import (
    audit,
    backfill,
    check,
    console,
    demo,
    get,
    hold,
    reconcile,
    run,
    search,
    simulate,
    status,
    verify,
)
from archiver.commands.helptext import explain


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add every command to ``sub``."""
    for module in (
        backfill,
        run,
        check,
        demo,
        status,
        simulate,
        get,
        verify,
        reconcile,
        search,
        hold,
        console,
        audit,
    ):
        module.register(sub, common)
    explain(sub)
