"""What an erasure request does to a subject's key (crypto-shredding of its numbers)."""

from __future__ import annotations

from collections.abc import Set

from archiver.privacy.lines import Opener


def shred(opener: Opener, hashes: Set[str], *, ranged: bool, kept: int) -> str:
    """Destroy the key of the subject's number when the erasure left none of its calls
    kept; the words that say what became of the key (audit record, stderr).

    The key is kept while a legal rule, a hold or a lock keeps one of the calls (the
    kept recording stays whole, its numbers readable, for as long as the rule says),
    and when the request names a time range (the key opens the number's other calls
    too): a later erasure of every call destroys it.
    """
    if opener.place is None:
        return "none: ARCHIVER_PRIVACY__KEYS is unset (new lines keep numbers plain)"
    if not hashes:
        return "none: the key place has no search key (no line was sealed)"
    if ranged:
        return "kept: the request names a time range, and the key opens the number's other calls"
    if kept:
        return (
            f"kept: {kept} call(s) of the number stay archived (refused or failed above); "
            "an erasure once none is left destroys it"
        )
    destroyed = False
    for digest in sorted(hashes):
        destroyed = opener.place.destroy(digest) or destroyed
        opener.forget(digest)
    return "destroyed" if destroyed else "absent: no sealed line of the number, or destroyed before"
