"""``archiver run``: the long-running service.

Polls the source every ``ARCHIVER_POLL_INTERVAL`` seconds, watching
``ARCHIVER_LOOKBACK`` behind its checkpoint by counts, archives what it finds, retries
what is due, and serves /healthz, /readyz and /metrics. SIGTERM or SIGINT: a
graceful stop within ``ARCHIVER_GRACE`` (exit 0); a second signal: at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Callable

from archiver.settings import Settings, require_source

log = logging.getLogger("archiver")


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser("run", help="poll the source forever and archive new recordings")
    common(p)
    p.set_defaults(handler=run, uvloop=True)  # the hot path: see cli.loop_factory


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run until SIGTERM/SIGINT."""
    from archiver.commands.runtime import StopSignals, open_runtime
    from archiver.service import Service

    require_source(settings.source)
    with StopSignals() as signals:
        async with open_runtime(settings) as rt, contextlib.AsyncExitStack() as stack:
            signals.target = rt.pipeline.stop
            p = rt.pipeline
            service = Service(
                p.health,
                p.metrics,
                rt.state.reports,
                rt.store,
                settings.service,
                clock=p.clock,
                lag_warning=settings.lag_warning,
                availability=rt.state.availability,
            )
            # Without the endpoints, the storage probe and the lag warning still run.
            watch = service.running() if settings.service.enabled else service.watching()
            await stack.enter_async_context(watch)
            log.info(
                "archiver run: polling %s every %ss (lookback %ss)",
                settings.source.kind.value if settings.source.kind else "?",
                settings.poll_interval,
                settings.lookback,
            )
            stats = await rt.pipeline.daemon()
    log.info(
        "stopped: archived %d recording(s), %d failed, %d listed",
        stats.archived,
        stats.failed,
        stats.listed,
    )
    return 0
