"""``archiver dedupe``: set aside the second call line of a call, rewriting nothing.

An archive written before the archive itself was asked (a state database lost
or replaced, ``archiver demo`` run twice) may hold two call lines of one call;
``archiver verify`` lists each as DUPLICATE. This writes one chained supersede
record per line set aside (:mod:`archiver.manifest.supersede`); afterwards
``verify`` reports them as superseded, and ``search`` shows the call once.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from archiver.manifest.reader import require_archive
from archiver.manifest.stamps import stamp_head
from archiver.manifest.supersede import SUPERSEDE_PREFIX
from archiver.manifest.writer import read_head
from archiver.retrieval.audit import AuditTrail
from archiver.retrieval.duplicates import dedupe, where
from archiver.settings import Settings
from archiver.storage import open_store
from archiver.timestamping import open_stamper
from archiver.witness.keys import load_signer
from archiver.witness.registry import register_writer


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the command."""
    p = sub.add_parser(
        "dedupe",
        help="record which call line stands where a call has two (rewrites nothing)",
        description="Read every manifest object; for each call (provider, cdr id) with more "
        "than one call line, keep the earliest archived one and write a chained supersede "
        f"record for each other one under {SUPERSEDE_PREFIX}. No manifest object is "
        "rewritten or removed; verify then reports those lines as superseded.",
    )
    common(p)
    p.add_argument(
        "--key",
        type=Path,
        help="a witness key file: register the records' chain with it (archiver witness register)",
    )
    p.set_defaults(handler=dedupe_command)


async def dedupe_command(args: argparse.Namespace, settings: Settings) -> int:
    """Supersede every duplicate call line; say what was done."""
    signer = load_signer(args.key) if args.key is not None else None
    async with (
        open_store(settings.storage, max_connections=16) as store,
        open_stamper(settings.timestamp) as stamper,
    ):
        await require_archive(store)
        done = await dedupe(store, datetime.now(UTC))
        # Like a seal's chain: time-stamped and registered when the deployment does so.
        head = await read_head(store, done.writer) if done.writer is not None else None
        if stamper is not None and head is not None:
            await stamp_head(store, stamper, head)
        if signer is not None and done.writer is not None:
            origin = "".join("_" if c.isspace() else c for c in settings.storage.url)
            key, _ = await register_writer(store, signer, origin, done.writer, datetime.now(UTC))
            print(f"registered the records' chain {done.writer} ({key})")
        for record in done.written:
            print(
                f"superseded {where(record.superseded)} by {where(record.kept)} "
                f"({record.provider} cdr {record.cdr_id}, sip_call_id {record.sip_call_id})"
            )
        await AuditTrail(store, settings.operator).record(
            "dedupe",
            {},
            "ok",
            {"superseded": len(done.written), "writer": done.writer},
        )
    if done.writer is None:
        print(
            f"no duplicate call lines: {done.lines} call line(s) of {done.calls} call(s)"
            + (f"; {done.already} superseded before" if done.already else "")
        )
    else:
        print(
            f"{len(done.written)} duplicate call line(s) superseded under chain {done.writer}; "
            f"{done.lines} call line(s) of {done.calls} call(s) read"
        )
    return 0
