"""The keyed hash, the sealed copy and the key place of sealed phone numbers (pure and
local files: no storage)."""

from __future__ import annotations

import os

import pytest

from archiver.errors import ConfigError
from archiver.privacy.crypto import (
    SealError,
    associated_data,
    keyed_hash,
    open_sealed,
    seal,
)
from archiver.privacy.keyplace import KeyPlace
from archiver.privacy.lines import ERASED, NO_KEYS, UNREADABLE, Opener, Sealer

KEY = bytes(range(32))
OTHER = bytes(32)
AAD = associated_data("cdr_v2", "c1", "s1@host", "from_number")


def test_a_sealed_number_opens_with_its_key_and_line():
    sealed = seal(KEY, "+84 90 123 4567", AAD)
    assert "4567" not in sealed
    assert open_sealed(KEY, sealed, AAD) == "+84 90 123 4567"
    assert seal(KEY, "+84 90 123 4567", AAD) != sealed, "a fresh nonce each time"


@pytest.mark.parametrize(
    "aad",
    [
        associated_data("cdr_v2", "c2", "s1@host", "from_number"),  # another line
        associated_data("cdr_v2", "c1", "s1@host", "to_number"),  # the other side
        associated_data("epacific", "c1", "s1@host", "from_number"),
    ],
)
def test_a_sealed_copy_moved_to_another_line_or_side_is_refused(aad):
    with pytest.raises(SealError):
        open_sealed(KEY, seal(KEY, "0901234567", AAD), aad)


def test_a_tampered_or_foreign_sealed_copy_is_refused_without_quoting_it():
    sealed = seal(KEY, "0901234567", AAD)
    body = sealed[3:]
    flipped = "v1." + body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    for bad in (flipped, sealed[:-2], "v1.", "v2." + body, "v1.!!!", "v1." + "A" * 600, ""):
        with pytest.raises(SealError) as caught:
            open_sealed(KEY, bad, AAD)
        assert body[:12] not in str(caught.value)
    with pytest.raises(SealError):
        open_sealed(OTHER, sealed, AAD)
    with pytest.raises(ValueError, match="32 bytes"):
        seal(b"short", "0901234567", AAD)


def test_the_keyed_hash_depends_on_the_key_only_through_hmac():
    assert keyed_hash(KEY, "0901234567") == keyed_hash(KEY, "0901234567")
    assert keyed_hash(KEY, "0901234567") != keyed_hash(OTHER, "0901234567")
    assert keyed_hash(KEY, "0901234567") != keyed_hash(KEY, "0901234568")
    assert len(keyed_hash(KEY, "0901234567")) == 64


def _line(**numbers: str | None) -> dict[str, object]:
    return {"provider": "cdr_v2", "cdr_id": "c1", "sip_call_id": "s1@host", **numbers}


def test_sealed_lines_open_find_and_erase(tmp_path):
    place = KeyPlace.open(tmp_path / "keys", create=True)
    sealed = Sealer(place).seal_fields(_line(from_number="84901234567", to_number=None))
    assert "from_number" not in sealed
    assert "to_number" not in sealed
    assert sealed["to_number_hash"] is None
    assert sealed["to_number_sealed"] is None
    assert "901234567" not in repr(sealed)
    opener = Opener(KeyPlace.open(tmp_path / "keys", create=False))
    assert opener.fields(sealed)["from_number"] == "84901234567"
    for spelling in ("0901234567", "+84 90 123 4567", "0084-901-234-567"):
        assert opener.query_hashes(spelling) == {sealed["from_number_hash"]}
    assert Opener(None).fields(sealed)["from_number"] == NO_KEYS
    moved = {**sealed, "cdr_id": "c2"}
    assert opener.fields(moved)["from_number"] == UNREADABLE
    assert opener.fields({**sealed, "from_number_hash": "../search"})["from_number"] == UNREADABLE
    assert place.destroy(str(sealed["from_number_hash"])) is True
    assert place.destroy(str(sealed["from_number_hash"])) is False
    assert Opener(place).fields(sealed)["from_number"] == ERASED
    plain = _line(from_number="0901234567")
    assert Opener(place).fields(plain) is plain, "an older line is read as it is"


def test_key_files_are_private_and_a_place_open_to_others_is_refused(tmp_path):
    root = tmp_path / "keys"
    place = KeyPlace.open(root, create=True)
    place.search_key(create=True)
    assert os.stat(root).st_mode & 0o777 == 0o700
    assert os.stat(root / "subjects").st_mode & 0o777 == 0o700
    assert os.stat(root / "search.key").st_mode & 0o777 == 0o600
    os.chmod(root / "search.key", 0o644)
    with pytest.raises(ConfigError, match="open to other accounts") as caught:
        place.search_key(create=False)
    assert "\n" not in str(caught.value)
    os.chmod(root / "search.key", 0o600)
    os.chmod(root, 0o755)
    with pytest.raises(ConfigError, match=r"open to other accounts \(mode 755\)"):
        KeyPlace.open(root, create=False)
    os.chmod(root, 0o700)
    (root / "search.key").write_text("not hex\n")
    with pytest.raises(ConfigError, match="not a key file"):
        place.search_key(create=False)
    with pytest.raises(ConfigError, match="no such|No such"):
        KeyPlace.open(tmp_path / "missing", create=False)
