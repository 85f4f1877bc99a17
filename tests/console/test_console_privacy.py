"""The console over sealed phone numbers (ARCHIVER_PRIVACY__KEYS): its index holds no
number, a search in any spelling finds the calls by keyed hash, and a call's page
shows the number until its key is destroyed, "[erased]" afterwards."""

from __future__ import annotations

from archiver.privacy.crypto import keyed_hash
from archiver.privacy.keyplace import KeyPlace
from archiver.privacy.lines import ERASED, Opener
from archiver.retrieval.search import phone_key
from archiver.settings import PrivacySettings, StorageSettings
from tests.support.console import (
    archived_storage,
    audit_records,
    manifest_calls,
    running_console,
    signed_in,
)


async def test_the_console_finds_sealed_numbers_and_shows_them_erased(tmp_path):
    storage = StorageSettings(url=str(tmp_path / "archive"))
    keys = tmp_path / "keys"
    await archived_storage(
        storage, tmp_path / "builder", calls=8, privacy=PrivacySettings(keys=keys)
    )
    place = KeyPlace.open(keys, create=False)
    # The test reads the keys: the opened lines are its truth.
    lines = [Opener(place).entry(c) for c in await manifest_calls_of(storage)]
    number = next(
        str(c.fields["from_number"])
        for c in lines
        if len(phone_key(str(c.fields.get("from_number") or ""))) == 10
    )
    key = phone_key(number)
    expected = {
        c.sip_call_id
        for c in lines
        if key in (phone_key(str(c.fields.get(s) or "")) for s in ("from_number", "to_number"))
    }
    async with running_console(storage, tmp_path, opener=Opener(place)) as console:
        index = (tmp_path / "console.sqlite3").read_bytes()
        assert key.encode() not in index
        assert ("84" + key[1:]).encode() not in index
        async with signed_in(console.url, "viewer") as http:
            for spelling in (number, "+84 " + key[1:3] + " " + key[3:], "0084" + key[1:]):
                async with http.get("/", params={"go": "1", "phone": spelling}) as resp:
                    html = await resp.text()
                assert f">{len(expected)} " in html, spelling
                assert all(sip in html for sip in expected)
                assert number in html
            search = bytes.fromhex((keys / "search.key").read_text().strip())
            assert place.destroy(keyed_hash(search, key))
            console.console.calls.opener = Opener(place)  # as a restart (or 30 s) would
            asked = "0084 " + key[1:3] + " " + key[3:]  # the page repeats what was asked
            async with http.get("/", params={"go": "1", "phone": asked}) as resp:
                html = await resp.text()
            assert f">{len(expected)} " in html, "found by keyed hash after the erasure"
            assert number not in html
            assert key[1:] not in html
            assert ERASED in html
        searches = [r for r in await audit_records(console.store) if r["action"] == "search"]
        assert len(searches) == 4
        for record in searches:
            assert "phone" not in record["target"]["query"], "audited by keyed hash only"
            assert record["target"]["query"]["phone_hash"] == keyed_hash(search, key)


async def manifest_calls_of(storage: StorageSettings):
    from archiver.storage import open_store

    async with open_store(storage) as store:
        return await manifest_calls(store)
