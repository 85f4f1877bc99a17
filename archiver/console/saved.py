"""Saved searches: a user names the search form's criteria and finds them again.

Kept in the console's SQLite file, per user, at most ``MAX_SAVED`` each. Only
the search form's own fields are kept (the query string is rebuilt from
them), so a saved search is a link to the search page and nothing else.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from archiver.console.context import Console, console_of, session_of

MAX_SAVED = 50
SEARCH_FIELDS = (
    "phone",
    "extension",
    "agent",
    "direction",
    "id",
    "from",
    "to",
    "time_from",
    "time_to",
    "min_seconds",
    "max_seconds",
    "outcome",
    "customer",
    "integrity",
    "hold",
    "sort",
    "size",
)


@dataclass(frozen=True, slots=True)
class SavedSearch:
    """A name and the search page's query string."""

    name: str
    query: str


def clean_query(raw: str) -> str:
    """The search form's fields of a query string, re-encoded; nothing else survives."""
    kept = [(k, v[:500]) for k, v in parse_qsl(raw[:4000]) if k in SEARCH_FIELDS and v]
    return urlencode([("go", "1"), *kept])


async def saved_searches(console: Console, user: str) -> list[SavedSearch]:
    """The user's saved searches, by name."""
    rows = await console.calls.db.run(
        lambda c: c.execute(
            "SELECT name, query FROM saved_searches WHERE user = ? ORDER BY name", (user,)
        ).fetchall()
    )
    return [SavedSearch(str(name), str(query)) for name, query in rows]


async def save(request: web.Request) -> web.StreamResponse:
    """POST /searches: save the search (``query``) under ``name``; back to it."""
    console = console_of(request)
    user = session_of(request).user
    form = await request.post()
    name = " ".join(str(form.get("name", "")).split())
    if not 1 <= len(name) <= 80:
        raise web.HTTPBadRequest(text="a saved search needs a name of 1 to 80 characters\n")
    query = clean_query(str(form.get("query", "")))

    def upsert(conn: sqlite3.Connection) -> bool:
        with conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM saved_searches WHERE user = ? AND name != ?", (user, name)
            ).fetchone()
            if count >= MAX_SAVED:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO saved_searches (user, name, query) VALUES (?, ?, ?)",
                (user, name, query),
            )
            return True

    if not await console.calls.db.run(upsert):
        raise web.HTTPBadRequest(text=f"at most {MAX_SAVED} saved searches: delete one first\n")
    raise web.HTTPSeeOther(f"/?{query}")


async def delete(request: web.Request) -> web.StreamResponse:
    """POST /searches/delete: forget the saved search ``name``."""
    console = console_of(request)
    user = session_of(request).user
    form = await request.post()
    name = str(form.get("name", ""))

    def remove(conn: sqlite3.Connection) -> None:
        with conn:
            conn.execute("DELETE FROM saved_searches WHERE user = ? AND name = ?", (user, name))

    await console.calls.db.run(remove)
    raise web.HTTPSeeOther("/")


def add_routes(app: web.Application) -> None:
    """The saved searches' routes."""
    app.router.add_post("/searches", save)
    app.router.add_post("/searches/delete", delete)
