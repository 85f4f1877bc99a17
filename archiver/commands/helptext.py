"""What every command's ``--help`` says beyond its options: a paragraph, examples, exit codes.

Kept in one table so that each command explains itself the same way (and a
test can check none is missing); where the table has no paragraph, the
command module's own ``description`` is kept.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass

from archiver.exits import ExitCode

_COMMON: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FATAL: "a fatal error, one line (authentication refused, storage unreachable...)",
    ExitCode.USAGE: "bad usage or configuration, one line naming it",
}
_STOPPED: dict[ExitCode, str] = {
    ExitCode.INTERRUPTED: "stopped by a second SIGINT/SIGTERM: run it again to finish"
}
_NO_ARCHIVE = "; or no archive in the storage"


@dataclass(frozen=True)
class CommandHelp:
    """The help of one command: what it does, how it is used, what its exit status means."""

    description: str
    examples: tuple[str, ...]
    exits: Mapping[ExitCode, str]


HELP: dict[str, CommandHelp] = {
    "backfill": CommandHelp(
        "Archive every call whose CDR starts in [--since, --until): lists the provider's CDRs "
        "window by window, streams each recording into the storage, verifies it and writes the "
        "manifest. Resumable: run the same command again after a crash or a stop and it "
        "finishes the work without duplicating anything.",
        (
            "archiver backfill --since 2021-02-17 --until 2021-02-18",
            "archiver backfill --since '2021-02-17 08:00' --until '2021-02-17 12:00' --dry-run",
        ),
        {
            **_COMMON,
            ExitCode.FAILED_RECORDINGS: "finished, but some recordings failed "
            "permanently (each listed with its reason) or still wait for a retry",
            **_STOPPED,
        },
    ),
    "run": CommandHelp(
        "The long-running service: polls the provider every ARCHIVER_POLL_INTERVAL seconds, "
        "re-reading ARCHIVER_LOOKBACK seconds behind its checkpoint for late CDRs and late "
        "recordings, archives what it finds and serves /healthz, /readyz and /metrics on "
        "ARCHIVER_SERVICE__HOST:PORT. SIGTERM or SIGINT stops it gracefully.",
        ("archiver run", "ARCHIVER_SERVICE__PORT=9100 archiver run --env-file site.env"),
        {
            ExitCode.OK: "stopped gracefully by SIGTERM/SIGINT",
            ExitCode.FATAL: _COMMON[ExitCode.FATAL],
            ExitCode.USAGE: "bad usage or configuration, or the service port is in use",
            **_STOPPED,
        },
    ),
    "check": CommandHelp(
        "The first command on a new deployment: validates the settings, makes one small request "
        "to the provider, asks whether the bucket exists (without creating it), writes, reads "
        "back and deletes a small object under _archiver/check/ in the storage, names the AWS "
        "credentials used (never their secret), and reports the bucket's versioning and Object "
        "Lock. Every part is checked, each with a short timeout: one line per part, each "
        "problem on stderr. 'archiver init-storage' creates a missing bucket or folder.",
        ("archiver check", "archiver check --env-file site.env"),
        {
            ExitCode.OK: "every check passed",
            ExitCode.FATAL: "a check failed (each failure is one line)",
            ExitCode.USAGE: "bad settings (each named)",
        },
    ),
    "init-storage": CommandHelp(
        "",
        ("archiver init-storage", "archiver init-storage --env-file admin.env"),
        {
            ExitCode.OK: "the storage is as the archiver wants it (each step says what it did)",
            ExitCode.FATAL: "a step failed (no rights to create or configure the bucket...)",
            ExitCode.USAGE: _COMMON[ExitCode.USAGE],
        },
    ),
    "demo": CommandHelp(
        "Starts a simulated provider on loopback and archives its calls into the configured "
        "storage (./archive by default), with a state database of its own "
        "(./archiver-demo-state.sqlite3) that it resets first, then prints commands to try "
        "next.",
        ("archiver demo", "archiver demo --calls 200"),
        {**_COMMON, ExitCode.FAILED_RECORDINGS: "some recordings were not archived", **_STOPPED},
    ),
    "status": CommandHelp(
        "What the state database says: the state file and the storage it describes, "
        "recordings by state, the checkpoint, the recent failures and the next retry. "
        "Reads only; never creates a state database.",
        ("archiver status", "archiver status --failures 50", "archiver status --format json"),
        {ExitCode.OK: "success", ExitCode.USAGE: "bad settings, or no state database there"},
    ),
    "retry": CommandHelp(
        "Queues every permanently failed recording again; the next backfill or run transfers them.",
        ("archiver retry && archiver backfill --since 2021-02-17 --until 2021-02-18",),
        {ExitCode.OK: "success", ExitCode.USAGE: "bad settings, or no state database there"},
    ),
    "simulate": CommandHelp(
        "Serves the simulated provider (both the cdr_v2 and the epacific API, with "
        "recordings) for trying a setup, and prints its base URL and credentials. Stops on "
        "SIGINT/SIGTERM.",
        ("archiver simulate --port 8080", "archiver simulate --port 8080 --recent --new-every 10"),
        {
            ExitCode.OK: "stopped by SIGINT/SIGTERM",
            ExitCode.USAGE: "bad usage, or the port is in use",
        },
    ),
    "get": CommandHelp(
        "",
        (
            "archiver get 3f2a9c1e@pbx.example.vn -o call.wav",
            "archiver get 3f2a9c1e@pbx.example.vn --url --expires 600",
        ),
        {
            **_COMMON,
            ExitCode.USAGE: "bad usage, an id naming several calls, FILE exists "
            "(--force)" + _NO_ARCHIVE,
            ExitCode.NOT_FOUND: "no archived call has this id",
            ExitCode.CORRUPT: "the object is missing or not the manifest's bytes (nothing written)",
        },
    ),
    "verify": CommandHelp(
        "",
        (
            "archiver verify",
            "archiver verify --since 2025-01-01 --until 2025-02-01 --deep",
            "archiver verify --no-rehash",
            "archiver verify --witness /audit/checkpoints --witness-key audit.pub",
        ),
        {
            **_COMMON,
            ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE,
            ExitCode.CORRUPT: "not everything was proven intact: objects missing, altered, "
            "corrupt or unproven, legacy lines (not proven), manifest objects missing, "
            "altered, hidden or out of the chain, a call with two call lines (DUPLICATE: "
            "archiver dedupe), the chain rewritten behind a witnessed checkpoint, a token "
            "missing or invalid, a writer unregistered, index pointers "
            "wrong (each listed)",
        },
    ),
    "rollup": CommandHelp(
        "Copy each writer's small manifest objects, with their chain links and timestamp "
        "tokens, into rollups under _archiver/rollups/<writer>/ (at most 5,000 objects or "
        "64 MiB each), from its last rollup to its chain head, so that verify, get, search and "
        "DuckDB/Athena read a few large objects instead of one per flush. Nothing is "
        "rewritten or deleted. A chain that does not walk cleanly from its head is never "
        "rolled up. An unfinished rollup (a crash) is finished first. The run leader does "
        "this by itself (ARCHIVER_ROLLUP_OBJECTS, ARCHIVER_ROLLUP_AGE).",
        ("archiver rollup", "archiver rollup --dry-run"),
        {
            ExitCode.OK: "done, or nothing due",
            ExitCode.FATAL: _COMMON[ExitCode.FATAL],
            ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE,
            ExitCode.CORRUPT: "a writer's chain does not walk cleanly from its head (a link or "
            "manifest object missing or altered, or a planted rollup object): that writer is "
            "not rolled up, the break is named (run archiver verify)",
        },
    ),
    "seal": CommandHelp(
        "",
        ("archiver seal", "archiver seal --key /audit/witness.key"),
        {
            **_COMMON,
            ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE,
            ExitCode.CORRUPT: "legacy objects appeared after the archive was sealed: "
            "listed OUT-OF-CHAIN, not sealed",
        },
    ),
    "witness": CommandHelp(
        "An auditor's commands. keygen makes a witness key (keep it off the archive's "
        "machines); checkpoint reads the manifest chain, checks it extends every checkpoint "
        "already kept at PLACE and that every writer is registered, then cosigns a new "
        "checkpoint and writes it there; register registers a writer (a new deployment, a new "
        "state database after a loss, a seal). verify --witness PLACE --witness-key VKEY "
        "then proves the chain was not rewritten behind any of them.",
        (
            "archiver witness keygen --name audit.example.com/calls --out audit.key",
            "archiver witness register --key audit.key",
            "archiver witness checkpoint --key audit.key --to s3://audit-bucket/checkpoints",
        ),
        {
            **_COMMON,
            ExitCode.CORRUPT: "checkpoint: the chain is broken, rewritten behind an earlier "
            "checkpoint, or has an unregistered writer: nothing was signed",
        },
    ),
    "case": CommandHelp(
        "",
        (
            "archiver case open --reference 'KN-2026-118' --reason 'customer complaint'",
            "archiver case add C-20261204-1a2b3c4d 7a1f@pbx 10231",
            "archiver case export C-20261204-1a2b3c4d -o kn-2026-118.zip",
        ),
        {
            **_COMMON,
            ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE,
            ExitCode.NOT_FOUND: "no such case, or no such call",
            ExitCode.CORRUPT: "a recording or its manifest is not proven: no package written",
        },
    ),
    "dedupe": CommandHelp(
        "",
        ("archiver dedupe", "archiver verify"),
        {**_COMMON, ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE},
    ),
    "dispose": CommandHelp(
        "",
        (
            "archiver dispose --dry-run",
            "archiver dispose --as-of 2026-12-31 --approved-by 'Records officer' "
            "--certificate dispose-2026-12.csv",
        ),
        {
            **_COMMON,
            ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE,
            ExitCode.FAILED_RECORDINGS: "some recordings due could not be deleted (named)",
        },
    ),
    "subject": CommandHelp(
        "",
        (
            "archiver subject --phone '+84 903 123 456'",
            "archiver subject --phone 0903123456 --export subject.zip",
            "archiver subject --phone 0903123456 --erase --approved-by 'DPO'",
        ),
        {
            **_COMMON,
            ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE,
            ExitCode.FAILED_RECORDINGS: "--erase: some erasable recordings could not be deleted",
            ExitCode.CORRUPT: "--export: a recording is not proven: no package written",
        },
    ),
    "reindex": CommandHelp(
        "",
        ("archiver reindex", "archiver reindex --since 2021-02-17 --until 2021-02-18"),
        {**_COMMON, ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE},
    ),
    "reconcile": CommandHelp(
        "",
        (
            "archiver reconcile --since 2021-02-17 --until 2021-02-18",
            "archiver reconcile --since 2021-02-17 --until 2021-02-18 --fix",
        ),
        {
            **_COMMON,
            ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE + " (without --fix)",
            ExitCode.CORRUPT: "calls with a recording are missing from the manifest",
            **_STOPPED,
        },
    ),
    "search": CommandHelp(
        "",
        (
            "archiver search --phone 0901234567 --since 2025-01-01 --until 2025-04-01",
            "archiver search --direction 2 --format csv > calls.csv",
        ),
        {**_COMMON, ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE},
    ),
    "hold": CommandHelp(
        "",
        ("archiver hold 3f2a9c1e@pbx.example.vn", "archiver hold 3f2a9c1e@pbx.example.vn --on"),
        {
            **_COMMON,
            ExitCode.USAGE: "bad usage, a local directory or a bucket without Object "
            "Lock" + _NO_ARCHIVE,
            ExitCode.NOT_FOUND: "no archived call has this id",
            ExitCode.CORRUPT: "the archived version is gone",
        },
    ),
    "console": CommandHelp(
        "",
        ("archiver console", "ARCHIVER_CONSOLE__PORT=8443 archiver console"),
        _COMMON,
    ),
    "console-user": CommandHelp(
        "Adds, removes or lists the web console's accounts. They live in "
        "ARCHIVER_CONSOLE__USERS_FILE, with Argon2 password hashes; each has a role (viewer, "
        "listener, exporter, officer) that decides what it may do.",
        ("archiver console-user add alice --role officer", "archiver console-user list"),
        {ExitCode.OK: "success", ExitCode.USAGE: _COMMON[ExitCode.USAGE]},
    ),
    "export": CommandHelp(
        "",
        (
            "archiver export 0b4c1e9f-7a21@pbx 1002 -o two-calls.zip --reason 'case 12'",
            "archiver export --search --phone 0901234567 --since 2025-01-01 -o case.zip",
        ),
        {
            ExitCode.OK: "the ZIP is written, every recording verified",
            ExitCode.FATAL: _COMMON[ExitCode.FATAL],
            ExitCode.USAGE: _COMMON[ExitCode.USAGE]
            + "; more calls or bytes than the export limits; an ambiguous id"
            + _NO_ARCHIVE,
            ExitCode.NOT_FOUND: "an ID names no archived call",
            ExitCode.CORRUPT: "a recording or its line failed its check: nothing written",
        },
    ),
    "audit": CommandHelp(
        "",
        (
            "archiver audit --since 2025-01-01 --until 2025-02-01",
            "archiver audit --operator alice --action get --format csv > alice.csv",
        ),
        {**_COMMON, ExitCode.USAGE: _COMMON[ExitCode.USAGE] + _NO_ARCHIVE},
    ),
}


def epilog(help_: CommandHelp) -> str:
    """The examples and exit codes, as shown under the options."""
    lines = ["examples:", *(f"  {e}" for e in help_.examples), "", "exit codes:"]
    for code, meaning in sorted(help_.exits.items()):
        lines += textwrap.wrap(
            meaning, 78, initial_indent=f"  {int(code):<4} ", subsequent_indent=" " * 7
        )
    return "\n".join(lines)


def explain(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Give every registered command its paragraph, examples and exit codes.

    An option without a help line gets its choices as one, so no option is
    left unexplained.
    """
    for name, parser in sub.choices.items():
        help_ = HELP[name]
        text = help_.description or parser.description or ""
        parser.description = textwrap.fill(text, 78)
        parser.epilog = epilog(help_)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        for action in parser._actions:
            if action.help is None and action.choices:
                action.help = "one of: " + ", ".join(str(c) for c in action.choices)
