"""Signed-in sessions, kept in the console's SQLite file so a restart signs nobody out.

A session row holds the SHA-256 of its cookie's token (the file at rest gives
no usable token), the user, the role, the CSRF token and the account's
*stamp*: a digest of the account's line in the users file. A password
change, a removal, or a role change gives the account another stamp (an
Argon2 hash has a fresh salt each time, so removing an account and adding it
again with the same password changes it too), and a session whose stamp is
not its account's ends for good: its row is deleted.

Every operation is one or two statements on the primary key or the expiry
index: none grows with the number of sessions. Expired rows are deleted a few
at a time when a session is created.

A user vouched for by the trusted proxy gets no row at all: the proxy's header
is the identity on every request, so :func:`proxy_session` builds the session
from it, with a CSRF token derived from a secret kept in the file.

Play grants (a few minutes of leave to stream one recording) stay in memory,
per session, in a bounded map: a restart only asks for Play again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from archiver.console.auth import Account, PlayGrant, Role
from archiver.index_db import IndexDatabase

PURGE_BATCH = 32  # expired rows deleted per new session: enough to keep up, never a scan
MAX_GRANT_SESSIONS = 10_000  # sessions whose play grants are remembered (least recent dropped)


def account_stamp(account: Account) -> str:
    """What a session must still match: the account's name, role and password hash."""
    line = f"{account.name}\0{account.role.label}\0{account.password_hash}"
    return hashlib.sha256(line.encode("utf-8")).hexdigest()[:32]


@dataclass
class Session:
    """A signed-in browser (``via`` "password"), or one request vouched for by the proxy."""

    user: str
    role: Role
    csrf: str
    expires: float  # time.time()
    via: str  # "password" or "proxy"
    key: str  # what play grants are kept under: the token's hash, or "proxy:<user>"
    stamp: str = ""
    grants: OrderedDict[str, PlayGrant] = field(default_factory=OrderedDict)
    # The reason given on a call's page, by call id, with when it lapses (time.monotonic):
    # one reason covers play, download and hold of that call during the visit.
    reasons: OrderedDict[int, tuple[str, float]] = field(default_factory=OrderedDict)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class Sessions:
    """Password sessions by their cookie token, in the console's SQLite file."""

    def __init__(self, db: IndexDatabase, lifetime: float) -> None:
        self.db = db
        self.lifetime = lifetime
        self._memory: OrderedDict[str, _Memory] = OrderedDict()
        self._secret: bytes | None = None

    async def create(self, account: Account) -> tuple[str, Session]:
        """A new session of ``account`` and its token (the cookie's value)."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + self.lifetime
        stamp = account_stamp(account)

        def insert(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute(
                    "DELETE FROM sessions WHERE token_hash IN "
                    "(SELECT token_hash FROM sessions WHERE expires <= ? LIMIT ?)",
                    (now, PURGE_BATCH),
                )
                conn.execute(
                    "INSERT INTO sessions (token_hash, user, role, stamp, csrf, expires) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (_digest(token), account.name, int(account.role), stamp, csrf, expires),
                )

        await self.db.run(insert)
        key = _digest(token).hex()
        memory = self._memory_of(key)
        return token, Session(
            account.name,
            account.role,
            csrf,
            expires,
            "password",
            key,
            stamp,
            memory.grants,
            memory.reasons,
        )

    async def get(self, token: str | None) -> Session | None:
        """The live session of ``token``, if any (an expired one is deleted)."""
        if not token or len(token) > 128:
            return None
        digest = _digest(token)

        def read(conn: sqlite3.Connection) -> tuple[str, int, str, str, float] | None:
            row = conn.execute(
                "SELECT user, role, stamp, csrf, expires FROM sessions WHERE token_hash = ?",
                (digest,),
            ).fetchone()
            return None if row is None else (row[0], row[1], row[2], row[3], row[4])

        row = await self.db.run(read)
        if row is None:
            return None
        user, role, stamp, csrf, expires = row
        if expires <= time.time():
            await self.end(token)
            return None
        key = digest.hex()
        memory = self._memory_of(key)
        return Session(
            user, Role(role), csrf, expires, "password", key, stamp, memory.grants, memory.reasons
        )

    async def end(self, token: str | None) -> None:
        """Sign out: the session's row and its grants are gone."""
        if not token or len(token) > 128:
            return
        digest = _digest(token)

        def delete(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("DELETE FROM sessions WHERE token_hash = ?", (digest,))

        await self.db.run(delete)
        self._memory.pop(digest.hex(), None)

    async def count(self) -> int:
        """How many session rows the file holds (expired ones not yet purged included)."""
        return await self.db.run(
            lambda conn: int(conn.execute("SELECT count(*) FROM sessions").fetchone()[0])
        )

    async def proxy_session(self, user: str, role: Role, stamp: str) -> Session:
        """The session of one request the trusted proxy vouches for: no row, no cookie.

        Its CSRF token is an HMAC of the user and the account's stamp under the
        file's secret, so the pages' forms carry the same token on every request.
        """
        secret = self._secret or await self._load_secret()
        csrf = hmac.new(secret, f"proxy\0{user}\0{stamp}".encode(), hashlib.sha256).hexdigest()
        key = f"proxy:{user}"
        memory = self._memory_of(key)
        return Session(
            user, role, csrf, float("inf"), "proxy", key, stamp, memory.grants, memory.reasons
        )

    async def _load_secret(self) -> bytes:
        fresh = secrets.token_bytes(32)

        def load(conn: sqlite3.Connection) -> bytes:
            with conn:
                conn.execute(
                    "INSERT OR IGNORE INTO console_secret (id, key) VALUES (1, ?)", (fresh,)
                )
                return bytes(conn.execute("SELECT key FROM console_secret").fetchone()[0])

        self._secret = await self.db.run(load)
        return self._secret

    def _memory_of(self, key: str) -> _Memory:
        memory = self._memory.get(key)
        if memory is None:
            memory = self._memory[key] = _Memory()
            while len(self._memory) > MAX_GRANT_SESSIONS:
                self._memory.popitem(last=False)
        else:
            self._memory.move_to_end(key)
        return memory


@dataclass
class _Memory:
    """What a session keeps in this process only: play grants and reasons given."""

    grants: OrderedDict[str, PlayGrant] = field(default_factory=OrderedDict)
    reasons: OrderedDict[int, tuple[str, float]] = field(default_factory=OrderedDict)
