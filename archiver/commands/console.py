"""``archiver console``: the auditor's web console; ``archiver console-user``: its accounts.

The console reads the storage alone (no state database): it indexes the
manifests into a local SQLite file (``--rebuild-index`` starts it afresh)
and serves the pages until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable

from archiver.console.auth import (
    PROXY_ONLY,
    Account,
    Role,
    check_name,
    hash_password,
    read_accounts,
    write_accounts,
)
from archiver.errors import ConfigError, UsageError
from archiver.manifest.reader import require_archive
from archiver.manifest.retention import load_schedule
from archiver.settings import Settings
from archiver.storage import open_store


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the commands."""
    p = sub.add_parser(
        "console",
        help="serve the auditor's web console (search, listen, export, holds, audit)",
        description="Serve the web console on ARCHIVER_CONSOLE__HOST:PORT, from the storage alone.",
    )
    common(p)
    p.add_argument(
        "--rebuild-index", action="store_true", help="index every manifest again, from scratch"
    )
    p.set_defaults(handler=run)

    u = sub.add_parser(
        "console-user",
        help="add, remove or list the console's local accounts, or change a password",
        description=(
            "Accounts live in ARCHIVER_CONSOLE__USERS_FILE (Argon2 password hashes). "
            "A new password (passwd, or add over an existing account), a removal or "
            "another role signs the account's sessions out for good, in a running "
            "console too."
        ),
    )
    common(u)
    u.add_argument("action", choices=["add", "passwd", "remove", "list"])
    u.add_argument("name", nargs="?", metavar="NAME", help="the account (add, passwd, remove)")
    u.add_argument("--role", choices=[r.label for r in Role], default="viewer")
    u.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (else it is asked on the terminal)",
    )
    u.add_argument(
        "--no-password",
        action="store_true",
        help="an account for proxy sign-in only (it gets a role, never a password)",
    )
    u.set_defaults(handler=run_user)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until stopped."""
    from archiver.console.app import serve
    from archiver.privacy.lines import opener_of

    # Read before anything is served: a bad rules file is a settings error (exit 2).
    schedule = load_schedule(
        settings.retention.rules_file,
        settings.storage.retention_days,
        {code: str(meaning) for code, meaning in settings.source.direction_codes.items()},
    )
    async with open_store(settings.storage, max_connections=16) as store:
        # As verify and search do: an empty or absent storage is most likely a wrong
        # ARCHIVER_STORAGE__URL, not an archive to serve "0 calls" of.
        await require_archive(store)
        await serve(
            settings.console,
            settings.source.tz,
            store,
            rebuild=args.rebuild_index,
            ready=lambda url: print(f"archiver console: serving on {url}", flush=True),
            tsa_ca=_ca(settings),
            opener=opener_of(settings.privacy),
            schedule=schedule,
            timestamp=settings.timestamp,
        )
    return 0


def _ca(settings: Settings) -> bytes | None:
    """The timestamp authority's CA certificate(s), put into evidence packages."""
    path = settings.timestamp.ca_bundle
    return None if path is None else path.read_bytes()


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UsageError("the two passwords differ")
    return first


async def run_user(args: argparse.Namespace, settings: Settings) -> int:
    """Add, remove or list accounts."""
    path = settings.console.users_file
    accounts = read_accounts(path)
    if args.action == "list":
        for account in accounts.values():
            kind = "proxy only" if account.password_hash == PROXY_ONLY else "password"
            print(f"{account.name}\t{account.role.label}\t{kind}")
        return 0
    if not args.name:
        raise UsageError(f"console-user {args.action}: NAME is required")
    try:
        name = check_name(args.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.action == "remove":
        if accounts.pop(name, None) is None:
            raise UsageError(f"no such user: {name}")
        write_accounts(path, accounts)
        print(f"removed {name}")
        return 0
    if args.action == "passwd":
        current = accounts.get(name)
        if current is None:
            raise UsageError(f"no such user: {name}")
        accounts[name] = Account(name, current.role, _new_hash(args, no_password=False))
        write_accounts(path, accounts)
        print(f"{name}: password changed; its sessions are signed out")
        return 0
    replaced = name in accounts
    accounts[name] = Account(name, Role.parse(args.role), _new_hash(args, args.no_password))
    write_accounts(path, accounts)
    print(f"{name}: {args.role}" + ("; its earlier sessions are signed out" if replaced else ""))
    return 0


def _new_hash(args: argparse.Namespace, no_password: bool) -> str:
    try:
        return PROXY_ONLY if no_password else hash_password(_password(args))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
