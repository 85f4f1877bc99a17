"""``archiver witness keygen|checkpoint|register``: signed checkpoints of the manifest chain,
kept where the archive's writer cannot rewrite them, and registered writers.

The witness key is an auditor's, not the archive's: whoever holds the storage
credentials (the storage administrator, the archiver's operator) must not hold it.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from archiver.errors import UsageError
from archiver.exits import ExitCode
from archiver.manifest.reader import require_archive
from archiver.retrieval.chain_audit import audit_chains
from archiver.retrieval.link_table import LinkTable
from archiver.retrieval.problems import Problem, ProblemKind
from archiver.retrieval.scratch import open_scratch
from archiver.retrieval.witness_audit import audit_witnesses
from archiver.settings import Settings
from archiver.state import open_state_store
from archiver.storage import open_store
from archiver.witness.checkpoint import Checkpoint, inconsistencies
from archiver.witness.keys import load_signer
from archiver.witness.note import NoteError, Signer, sign_note
from archiver.witness.place import checkpoint_name, read_checkpoints, write_checkpoint
from archiver.witness.registry import register_writer


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the commands."""
    w = sub.add_parser(
        "witness",
        help="witness keys, signed checkpoints of the chain, writer registrations",
        description="An auditor's commands: make a witness key, cosign a checkpoint of the "
        "manifest chain after checking it extends the last one (kept outside the archive), "
        "register a writer. verify --witness PLACE --witness-key VKEY checks them.",
    )
    wsub = w.add_subparsers(dest="witness_command", metavar="COMMAND", required=True)
    k = wsub.add_parser("keygen", help="make a witness key (a file only the auditor keeps)")
    common(k)
    k.add_argument("--name", required=True, help="the key's name, e.g. audit.example.com/calls")
    k.add_argument("--out", required=True, type=Path, help="the private key file (0600, new)")
    k.set_defaults(handler=keygen)
    c = wsub.add_parser(
        "checkpoint",
        help="cosign the chain's current heads and keep the checkpoint at PLACE",
        description="Read every writer's chain, check it extends every checkpoint already "
        "at PLACE and that every writer is registered, then sign a new checkpoint and write "
        "it there (a new object, never over another). Exit 5, signing nothing, otherwise.",
    )
    common(c)
    c.add_argument("--key", required=True, type=Path, help="the witness key file")
    c.add_argument("--to", required=True, metavar="PLACE", help="a folder or s3://bucket/prefix")
    c.add_argument("--origin", help="the archive's name in the note (default: the storage URL)")
    c.set_defaults(handler=checkpoint)
    r = wsub.add_parser(
        "register",
        help="register a writer (a new deployment, a new state after a loss, a seal)",
    )
    common(r)
    r.add_argument("--key", required=True, type=Path, help="the witness key file")
    r.add_argument(
        "--writer",
        action="append",
        metavar="ID",
        help="the writer id (repeatable; default: the one of this state database)",
    )
    r.add_argument("--origin", help="the archive's name in the note (default: the storage URL)")
    r.set_defaults(handler=register_command)


def _origin(args: argparse.Namespace, settings: Settings) -> str:
    origin = args.origin or settings.storage.url
    return "".join("_" if c.isspace() else c for c in origin)


async def keygen(args: argparse.Namespace, settings: Settings) -> int:
    """Write a new key file (never over one) and print its verifier key."""
    try:
        signer = Signer.generate(args.name)
    except NoteError as exc:
        raise UsageError(f"--name: {exc}") from None
    path: Path = args.out
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"--out {path}: exists already (a key is never overwritten)") from None
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot create it ({exc.strerror})") from None
    with os.fdopen(fd, "w") as out:
        out.write(signer.to_text() + "\n")
    vkey = signer.verifier.vkey()
    pub = path.with_name(path.name + ".pub")
    try:
        fd = os.open(pub, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as out:
            out.write(vkey + "\n")
    except OSError:
        pub = None  # type: ignore[assignment]
    print(f"witness key written to {path} (keep it away from the storage's administrators)")
    print(f"verifier key{f' (also in {pub})' if pub else ''}: {vkey}")
    return 0


async def checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    """Check the chain extends the checkpoints at PLACE, then cosign and keep a new one.

    The chain is walked on a scratch file, as verify walks it (``ARCHIVER_SCRATCH_DIR``):
    its links and walks are read from there while the checkpoint is made."""
    with open_scratch(settings.scratch_dir, "witness") as db:
        return await _checkpoint(args, settings, db)


async def _checkpoint(args: argparse.Namespace, settings: Settings, db: sqlite3.Connection) -> int:
    signer = load_signer(args.key)
    origin = _origin(args, settings)
    async with open_store(settings.storage, max_connections=24) as store:
        await require_archive(store)
        chains = await audit_chains(store, LinkTable(db), db)
        witnessed = await read_checkpoints(args.to, settings.storage, [signer.verifier], new=True)
        report = await audit_witnesses(
            store, chains.state, chains.writer_ids, [], [signer.verifier], settings.storage
        )
    problems = [p for p in chains.problems if p.kind is ProblemKind.CHAIN_BROKEN]
    for old in witnessed.checkpoints:
        for found in inconsistencies(old, chains.state):
            problems.append(Problem(ProblemKind.CHAIN_REWRITTEN, found.writer, found.detail))
    problems += report.problems
    if problems:
        for problem in problems:
            print(problem.line())
        print(f"not witnessed: {len(problems)} problem(s); nothing was signed")
        return ExitCode.CORRUPT
    for name, why in witnessed.refused:
        print(f"note: {args.to} {name} is not a checkpoint of this key ({why}); ignored")
    now = datetime.now(UTC)
    try:
        made = Checkpoint.of(origin, chains.state)
    except NoteError as exc:
        raise UsageError(f"--origin: {exc}") from None
    name = await write_checkpoint(
        args.to, settings.storage, checkpoint_name(made, now), sign_note(made.text(), signer, now)
    )
    print(
        f"witnessed {name}: {len(made.heads)} writer(s), size {made.size}, "
        f"extending {len(witnessed.checkpoints)} earlier checkpoint(s)"
    )
    return 0


async def register_command(args: argparse.Namespace, settings: Settings) -> int:
    """Register the named writers (default: this state's) in the archive."""
    signer = load_signer(args.key)
    writers: list[str] = args.writer or []
    if not writers:
        async with open_state_store(settings.state) as state:
            writers = [await state.batches.writer_id()]
    async with open_store(settings.storage, max_connections=8) as store:
        for writer in writers:
            try:
                key, new = await register_writer(
                    store, signer, _origin(args, settings), writer, datetime.now(UTC)
                )
            except NoteError as exc:
                raise UsageError(f"--writer {writer}: {exc}") from None
            print(f"{'registered' if new else 'already registered'}: writer {writer} ({key})")
    return 0
