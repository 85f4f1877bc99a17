"""Who may do what: roles, local accounts (Argon2), sessions, sign-in limits.

Roles are ordered: each has the rights of the ones below it.

- viewer: search and see a call's metadata;
- listener: + play a recording;
- exporter: + download one recording, export a selection;
- officer: + legal holds, the audit trail.

Local accounts live in one file, ``name:role:argon2-hash`` a line, written
whole to a temporary file and renamed (never half-written), readable by its
owner only. Sessions are in :mod:`archiver.console.sessions`, failed sign-ins in
:mod:`archiver.console.throttle`. Argon2 runs in worker threads, a bounded
number at a time (:class:`Hashing`): a flood of sign-ins slows sign-ins, not
every page.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from archiver.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_HASHER = PasswordHasher()
FORWARDED_FOR = "X-Forwarded-For"  # the client's address, believed from a trusted proxy only
# The hash field of an account that signs in through the proxy only.
PROXY_ONLY = "-"  # noqa: S105 - a marker, not a password


class Headers(Protocol):
    """What is read of a request's headers (aiohttp's CIMultiDictProxy)."""

    def getall(self, key: str, default: list[str]) -> list[str]:
        """Every value of ``key``, in order."""
        ...


class Role(IntEnum):
    """What a user may do; a higher role has every right of the lower ones."""

    VIEWER = 1
    LISTENER = 2
    EXPORTER = 3
    OFFICER = 4

    @classmethod
    def parse(cls, name: str) -> Role:
        """A role from its name; ValueError naming the choices."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            choices = ", ".join(r.name.lower() for r in cls)
            raise ValueError(f"unknown role {name!r} (one of {choices})") from None

    @property
    def label(self) -> str:
        """The role's name as written in the users file."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Account:
    """One line of the users file."""

    name: str
    role: Role
    password_hash: str  # "-" for a proxy-only user, who has no password here


def check_name(name: str) -> str:
    """A valid user name, or ValueError."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"user name {name!r}: 1 to 64 letters, digits, '.', '_', '@' or '-' "
            "(starting with a letter or digit)"
        )
    return name


def read_accounts(path: Path) -> dict[str, Account]:
    """Every account of the users file (none if it does not exist); ConfigError if damaged."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"ARCHIVER_CONSOLE__USERS_FILE: cannot read {path}: {exc}") from None
    accounts: dict[str, Account] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":", 2)
        if len(parts) != 3:
            raise ConfigError(f"{path} line {number}: not name:role:hash")
        name, role, hashed = parts
        try:
            accounts[check_name(name)] = Account(name, Role.parse(role), hashed.strip())
        except ValueError as exc:
            raise ConfigError(f"{path} line {number}: {exc}") from None
    return accounts


class AccountsFile:
    """The users file, read again only when it changed (its mtime, size or inode):
    each request asks it whether its session's account still exists as it was."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._accounts: dict[str, Account] = {}

    def accounts(self) -> dict[str, Account]:
        """Every account as the file says now; ConfigError if damaged."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._accounts = None, {}
            return self._accounts
        except OSError as exc:
            raise ConfigError(
                f"ARCHIVER_CONSOLE__USERS_FILE: cannot read {self.path}: {exc}"
            ) from None
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        if stamp != self._stamp:
            # Read before the stamp is kept: a file that fails to parse is read again.
            self._accounts = read_accounts(self.path)
            self._stamp = stamp
        return self._accounts


def write_accounts(path: Path, accounts: dict[str, Account]) -> None:
    """Replace the users file atomically, readable and writable by its owner only."""
    body = "".join(f"{a.name}:{a.role.label}:{a.password_hash}\n" for a in accounts.values())
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password``."""
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    return _HASHER.hash(password)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a wrong name takes as long as a
    wrong password. Made on first use, not at import: an Argon2 hash costs 0.3 to 0.7 s
    and 64 MiB, which every CLI command importing this module used to pay."""
    return _HASHER.hash(secrets.token_hex(16))


def check_password(account: Account | None, password: str) -> bool:
    """Whether ``password`` is the account's (constant work whether or not it exists)."""
    usable = account is not None and account.password_hash != PROXY_ONLY
    hashed = account.password_hash if account is not None and usable else _dummy_hash()
    try:
        ok = _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and usable


@dataclass(frozen=True, slots=True)
class PlayGrant:
    """Leave to stream one call's recording for a while after a checked, audited Play."""

    call_id: int
    expires: float  # time.monotonic()


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(given) and hmac.compare_digest(str(given), expected)


class Hashing:
    """Argon2 off the event loop, at most ``limit`` hashes at once.

    One Argon2 verification costs 64 MiB and tens of milliseconds of CPU: on the
    event loop, twenty concurrent failed sign-ins stalled every other request for
    seconds. Here they run in worker threads and wait their turn; ``peak`` is the
    most that ever ran at once (the tests read it).
    """

    def __init__(self, limit: int = 2) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self.running = 0
        self.peak = 0

    async def check(self, account: Account | None, password: str) -> bool:
        """:func:`check_password` in a worker thread, within the bound."""
        async with self._slots:
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                return await asyncio.to_thread(check_password, account, password)
            finally:
                self.running -= 1


class AmbiguousIdentity(ValueError):
    """The identity header came more than once: which one the proxy meant is unknown."""


class TrustedProxy:
    """Identity from a reverse proxy's header, believed only from the proxy's own addresses."""

    def __init__(self, header: str | None, addresses: list[str]) -> None:
        self.header = header
        self.networks = [ip_network(a, strict=False) for a in addresses]

    def trusted(self, remote: str | None) -> bool:
        """Whether ``remote`` is one of the proxy's addresses."""
        if not remote or not self.networks:
            return False
        try:
            peer = ip_address(remote)
        except ValueError:
            return False
        return any(peer in net for net in self.networks)

    def client_address(self, remote: str | None, headers: Headers) -> str:
        """The client's address: the one the proxy appended to ``X-Forwarded-For`` when the
        request comes from the proxy, else the connection's own."""
        if self.trusted(remote):
            hops = ",".join(headers.getall(FORWARDED_FOR, [])).split(",")
            try:
                return str(ip_address(hops[-1].strip()))
            except ValueError:
                pass
        return remote or "?"

    def user(self, remote: str | None, headers: Headers) -> str | None:
        """The user the proxy vouches for, or None (no header, or not from a proxy address);
        AmbiguousIdentity when the header came more than once."""
        if not self.header or not self.trusted(remote):
            return None
        values = headers.getall(self.header, [])
        if len(values) > 1:
            raise AmbiguousIdentity(f"{self.header} came {len(values)} times")
        value = values[0] if values else None
        if not isinstance(value, str) or not value.strip():
            return None
        try:
            return check_name(value.strip())
        except ValueError:
            return None
