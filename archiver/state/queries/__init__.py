"""The state's SQL, one module per concern, both dialects side by side.

Every statement is a :class:`Sql` pair: the SQLite text and the PostgreSQL
text of one operation, written next to each other so they cannot drift. Binds
are numbered in the same order in both (``?1`` in SQLite, ``$1`` in
PostgreSQL). Where the dialects agree word for word, :func:`same` writes the
text once. The SQL is written out in full, never assembled from user input.

What may differ: SQLite's hot queries name their partial index (``INDEXED BY``:
without statistics its planner prefers the index on state and then sorts every
due job; the hint pins the plan and fails loudly should a query stop matching
its index's WHERE clause word for word); PostgreSQL's claim skips rows another
claimer is locking (``FOR UPDATE SKIP LOCKED``) and needs a type on a bind
compared with NULL (``$2::text``); ``IS NOT`` is SQLite's ``IS DISTINCT FROM``.
"""

from __future__ import annotations

from typing import NamedTuple


class Sql(NamedTuple):
    """One statement in each dialect: the same binds, in the same order."""

    sqlite: str
    postgres: str


def same(postgres: str) -> Sql:
    """A statement both dialects read alike: ``$N`` binds become SQLite's ``?N``."""
    if "?" in postgres:
        raise ValueError("write binds as $N")
    return Sql(sqlite=postgres.replace("$", "?"), postgres=postgres)


def owned(sql: Sql, bind: int) -> Sql:
    """``sql`` (an update of one job) applied only while bind number ``bind``'s
    owner holds the job's lease."""
    held = f" AND state = 'transferring' AND lease_owner = ${bind}"
    return Sql(sql.sqlite + held.replace("$", "?"), sql.postgres + held)
