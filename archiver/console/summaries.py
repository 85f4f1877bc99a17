"""An audit record's target in words, with a link to the call it names where the index
knows it: the audit page shows "call 0901... → 0283... (sip ...)" instead of raw JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archiver.console.context import Console

MAX_NAMED = 5  # calls named one by one in a summary; the rest are counted


@dataclass(frozen=True, slots=True)
class Summary:
    """What the audit page shows of a target: words, and links to calls."""

    text: str
    calls: tuple[tuple[str, int | None], ...] = ()  # (label, index id or None)
    more: int = 0  # calls not named


async def _call_link(console: Console, provider: str, cdr_id: str) -> tuple[str, int | None]:
    return f"{provider}:{cdr_id}", await console.calls.find(provider, cdr_id)


async def summary_of(console: Console, target: Any) -> Summary:
    """The summary of one record's target (any shape: a damaged record's is None)."""
    if not isinstance(target, dict):
        return Summary("")
    if isinstance(target.get("cdr_id"), str) and isinstance(target.get("provider"), str):
        link = await _call_link(console, target["provider"], target["cdr_id"])
        return Summary(str(target.get("sip_call_id") or ""), (link,))
    calls = target.get("calls")
    if isinstance(calls, list):
        named = []
        for value in calls[:MAX_NAMED]:
            provider, _, cdr_id = str(value).partition(":")
            named.append(await _call_link(console, provider, cdr_id))
        return Summary(f"{len(calls)}", tuple(named), max(0, len(calls) - MAX_NAMED))
    query = target.get("query")
    if isinstance(query, dict):
        words = ", ".join(f"{k}={v}" for k, v in sorted(query.items())) or "*"
        page = target.get("page")
        return Summary(f"{words}" + (f" (page {page})" if page not in (None, 1) else ""))
    parts = [f"{k}={v}" for k, v in sorted(target.items()) if isinstance(v, str | int | float)]
    return Summary(", ".join(parts)[:300])
