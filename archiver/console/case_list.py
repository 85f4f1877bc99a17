"""Which cases a session sees, from a list kept a few seconds: the search page offers the
user's cases on every load, and reading every case's events each time would cost a request
per event."""

from __future__ import annotations

import time

from archiver.console.auth import Role
from archiver.console.context import Console
from archiver.console.sessions import Session
from archiver.retrieval.cases import Case, list_cases

FRESH_FOR = 30.0  # seconds a listing of the cases is used again


def visible(session: Session, case: Case) -> bool:
    """Whether the session may see ``case``: an officer every one, others their own."""
    return session.role >= Role.OFFICER or case.opened_by == session.user


async def cases_of(console: Console, session: Session, *, fresh: bool = False) -> list[Case]:
    """The cases the session may see, newest first (``fresh``: read the storage now)."""
    kept = console.case_cache
    if fresh or kept is None or kept[0] + FRESH_FOR < time.monotonic():
        kept = (time.monotonic(), await list_cases(console.store))
        console.case_cache = kept
    return [c for c in kept[1] if visible(session, c)]


def forget(console: Console) -> None:
    """A case was opened or changed here: the next listing reads the storage."""
    console.case_cache = None
