"""Who may do what: roles, local accounts (Argon2), sessions, sign-in limits.

Roles are ordered: each has the rights of the ones below it.

- viewer: search and see a call's metadata;
- listener: + play a recording;
- exporter: + download one recording, export a selection;
- officer: + legal holds, the audit trail.

Local accounts live in one file, ``name:role:argon2-hash`` a line, written
whole to a temporary file and renamed (never half-written), readable by its
owner only. Sessions are kept in memory: a restart signs everyone out.
"""

from __future__ import annotations

import functools
import hmac
import os
import re
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from enum import IntEnum
from ipaddress import ip_address, ip_network
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from archiver.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_HASHER = PasswordHasher()
LOGIN_WINDOW = 15 * 60.0
MAX_LIMITER_KEYS = 10_000  # addresses and user names whose failed sign-ins are remembered
# The hash field of an account that signs in through the proxy only.
PROXY_ONLY = "-"  # noqa: S105 - a marker, not a password


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


@dataclass
class Session:
    """A signed-in browser."""

    user: str
    role: Role
    csrf: str
    expires: float
    via: str  # "password" or "proxy"
    grants: dict[str, PlayGrant] = field(default_factory=dict)  # by the grant's token


class Sessions:
    """Sessions by their cookie token, in memory."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self._by_token: dict[str, Session] = {}

    def create(self, user: str, role: Role, via: str) -> tuple[str, Session]:
        """A new session and its token (the cookie's value)."""
        self._expire()
        token = secrets.token_urlsafe(32)
        session = Session(
            user, role, secrets.token_urlsafe(32), time.monotonic() + self.lifetime, via
        )
        self._by_token[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token``, if any."""
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None or session.expires <= time.monotonic():
            self._by_token.pop(token, None)
            return None
        return session

    def end(self, token: str | None) -> None:
        """Sign out."""
        if token:
            self._by_token.pop(token, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, s in self._by_token.items() if s.expires <= now]:
            del self._by_token[token]


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(given) and hmac.compare_digest(str(given), expected)


class LoginLimiter:
    """At most ``attempts`` failed sign-ins per user name in a window, and four times
    that per address: behind a reverse proxy every user shares one address, and one
    guesser must not lock all of them out.
    """

    def __init__(
        self, attempts: int, window: float = LOGIN_WINDOW, max_keys: int = MAX_LIMITER_KEYS
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.max_keys = max_keys
        # Least recently failed first: a guesser trying endless names or addresses
        # pushes out the oldest keys, never grows the map past max_keys.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> int:
        """How many failures ``key`` has in the window; a key left with none is deleted."""
        times = self._failures.get(key)
        if times is None:
            return 0
        cutoff = time.monotonic() - self.window
        while times and times[0] < cutoff:
            times.popleft()
        if not times:
            del self._failures[key]
        return len(times)

    def allowed(self, address: str, user: str) -> bool:
        """Whether another attempt may be tried now."""
        return (
            self._recent(f"addr:{address}") < self.attempts * 4
            and self._recent(f"user:{user.casefold()}") < self.attempts
        )

    def failed(self, address: str, user: str) -> None:
        """Count one failed attempt."""
        now = time.monotonic()
        for key in (f"addr:{address}", f"user:{user.casefold()}"):
            self._recent(key)
            self._failures.setdefault(key, deque()).append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        """How many addresses and user names are remembered."""
        return len(self._failures)


class TrustedProxy:
    """Identity from a reverse proxy's header, believed only from the proxy's own addresses."""

    def __init__(self, header: str | None, addresses: list[str]) -> None:
        self.header = header
        self.networks = [ip_network(a, strict=False) for a in addresses]

    def user(self, remote: str | None, headers: dict[str, str] | object) -> str | None:
        """The user the proxy vouches for, or None (no header, or not from a proxy address)."""
        if not self.header or not remote or not self.networks:
            return None
        try:
            peer = ip_address(remote)
        except ValueError:
            return None
        if not any(peer in net for net in self.networks):
            return None
        value = getattr(headers, "get", lambda _k: None)(self.header)
        if not isinstance(value, str) or not value.strip():
            return None
        try:
            return check_name(value.strip())
        except ValueError:
            return None
