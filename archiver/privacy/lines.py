"""Sealing a new line's phone numbers, and opening them again for the readers.

A sealed line has, instead of ``from_number`` and ``to_number``, each side's
``<side>_hash`` (the keyed hash of the normalized number) and ``<side>_sealed``
(the number as the provider wrote it, sealed under the number's own key);
both null where the provider gave no number. Readers open the sealed copies
(:class:`Opener`): a side whose key was destroyed reads :data:`ERASED`, a line
read without the key place reads :data:`NO_KEYS`; a line written before (or
without) the key place has plain numbers and is read as it is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from archiver.manifest.entry import ManifestEntry
from archiver.manifest.retention import phone_key
from archiver.privacy.crypto import SealError, associated_data, keyed_hash, open_sealed, seal
from archiver.privacy.keyplace import KeyPlace
from archiver.settings._privacy import PrivacySettings

SIDES = ("from_number", "to_number")
ERASED = "[erased]"
NO_KEYS = "[sealed: no key place]"
UNREADABLE = "[sealed copy damaged]"
# Subject keys a reader keeps at once: a few MB; the cache starts again past it.
_CACHE_MAX = 65_536
# How long a reader trusts a key it read: a long-running console shows a number erased
# by another process (archiver subject --erase) at most this long afterwards.
KEY_CACHE_SECONDS = 30.0


def _aad(fields: Mapping[str, Any], side: str) -> bytes:
    return associated_data(
        str(fields.get("provider")),
        str(fields.get("cdr_id")),
        str(fields.get("sip_call_id")),
        side,
    )


def is_sealed(fields: Mapping[str, Any]) -> bool:
    """Whether a line keeps its numbers as keyed hashes and sealed copies."""
    return any(f"{side}_hash" in fields for side in SIDES)


def number_hashes(fields: Mapping[str, Any]) -> set[str]:
    """The keyed hashes a sealed line holds (either side)."""
    return {str(v) for side in SIDES if isinstance(v := fields.get(f"{side}_hash"), str)}


class Sealer:
    """Seals the numbers of the lines a run writes (keys created as numbers first appear)."""

    def __init__(self, place: KeyPlace) -> None:
        self.place = place
        # Read (or made) once: it never changes, and one key links a number's lines.
        # Subject keys are read for each line, so that one destroyed by an erasure
        # is not used for the number's next call.
        self._search: bytes | None = None

    def seal_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The line with each number replaced by its keyed hash and sealed copy."""
        if self._search is None:
            self._search = self.place.search_key(create=True)
        search = self._search
        assert search is not None
        out: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in SIDES:
                out[name] = value
                continue
            if value in (None, ""):
                out[f"{name}_hash"] = out[f"{name}_sealed"] = None
                continue
            digest = keyed_hash(search, phone_key(str(value)))
            key = self.place.subject_key(digest, create=True)
            assert key is not None
            out[f"{name}_hash"] = digest
            out[f"{name}_sealed"] = seal(key, str(value), _aad(fields, name))
        return out

    def seal_entry(self, entry: ManifestEntry) -> ManifestEntry:
        """:meth:`seal_fields` of a whole manifest line."""
        return ManifestEntry.from_line(self.seal_fields(entry.fields), entry.manifest_key)


def opened_names(fields: Mapping[str, Any]) -> list[str]:
    """The fields of a line as :meth:`Opener.fields` gives it, in order (pure): a sealed
    line gains its numbers' fields after its own."""
    names = list(fields)
    if is_sealed(fields):
        names += [side for side in SIDES if side not in fields]
    return names


class Opener:
    """Opens sealed lines for a reader; finds a number's lines by its keyed hash."""

    def __init__(self, place: KeyPlace | None) -> None:
        self.place = place
        self._keys: dict[str, tuple[float, bytes | None]] = {}

    def query_hashes(self, phone: str | None) -> frozenset[str]:
        """The keyed hash of a searched number in any spelling (empty: no search key)."""
        if phone is None or self.place is None:
            return frozenset()
        search = self.place.search_key(create=False)
        key = phone_key(phone)
        return frozenset({keyed_hash(search, key)}) if search is not None and key else frozenset()

    def fields(self, fields: Mapping[str, Any]) -> Mapping[str, Any]:
        """The line with its numbers readable where their keys allow (a copy if sealed)."""
        if not is_sealed(fields):
            return fields
        out = dict(fields)
        for side in SIDES:
            digest, sealed = fields.get(f"{side}_hash"), fields.get(f"{side}_sealed")
            if not isinstance(digest, str) or not isinstance(sealed, str):
                out[side] = None
            else:
                out[side] = self._open(digest, sealed, _aad(fields, side))
        return out

    def entry(self, call: ManifestEntry) -> ManifestEntry:
        """:meth:`fields` of a whole manifest line (the same line when not sealed)."""
        if not is_sealed(call.fields):
            return call
        return ManifestEntry.from_line(self.fields(call.fields), call.manifest_key)

    def _open(self, digest: str, sealed: str, aad: bytes) -> str:
        if self.place is None:
            return NO_KEYS
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is not None and now - cached[0] < KEY_CACHE_SECONDS:
            key = cached[1]
        else:
            try:
                key = self.place.subject_key(digest, create=False)
            except ValueError:  # not a keyed hash: a damaged or hostile line
                return UNREADABLE
            if len(self._keys) >= _CACHE_MAX:
                self._keys.clear()
            self._keys[digest] = (now, key)
        if key is None:
            return ERASED
        try:
            return open_sealed(key, sealed, aad)
        except SealError:
            return UNREADABLE

    def forget(self, digest: str) -> None:
        """Drop a key from the cache (it was just destroyed)."""
        self._keys.pop(digest, None)


def opener_of(settings: PrivacySettings) -> Opener:
    """The readers' opener of the key place the settings name (ConfigError if unusable)."""
    if settings.keys is None:
        return Opener(None)
    return Opener(KeyPlace.open(settings.keys, create=False))


def sealer_of(settings: PrivacySettings) -> Sealer | None:
    """The writers' sealer (the key place made if missing), or None: numbers stay plain."""
    if settings.keys is None:
        return None
    return Sealer(KeyPlace.open(settings.keys, create=True))
