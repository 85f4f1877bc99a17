"""Sealed phone numbers (ARCHIVER_PRIVACY__KEYS) end to end, on a local folder and on
SeaweedFS with Object Lock: the CLI as a subprocess over an archive a backfill wrote.

No manifest line names a number; search, subject and export find a number's calls
in any spelling and show it; an erasure destroys its key (kept while a legal hold
keeps one of its calls), after which no tool and no object of the archive names it,
while verify still proves every line, and the audit trail holds the request and
the key's fate, by keyed hash only.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter

import pytest

from archiver.privacy.crypto import keyed_hash
from archiver.retrieval.search import phone_key
from archiver.settings import PrivacySettings, StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from tests.support.cli import cli_env, run_cli, s3_storage_env
from tests.support.pipeline import backfill, make_settings
from tests.support.seaweed import admin_client


def _spellings(number: str) -> set[bytes]:
    """The ways a number may be written: as given, its digits, +84/84 for a leading 0."""
    key = phone_key(number)
    found = {number, key}
    if key.startswith("0"):
        found |= {"84" + key[1:], "+84" + key[1:]}
    return {s.encode() for s in found}


async def _objects(storage: StorageSettings) -> dict[str, bytes]:
    async with open_store(storage) as store:
        keys = [o.key async for o in store.list("")]
        return {k: b"".join([c async for c in store.read(k)]) for k in keys}


@pytest.fixture(params=["local", "s3"])
async def sealed(request, tmp_path, make_bucket, s3_settings, s3_env):
    """(simulator, storage, CLI environment, working directory, key place)."""
    sim = Simulator(SimConfig(seed=7, calls=14, recording_fraction=1.0, max_size=40_000))
    if request.param == "local":
        storage = StorageSettings(url=str(tmp_path / "archive"))
        env = {"ARCHIVER_STORAGE__URL": storage.url}
    else:
        storage = s3_settings(await make_bucket(object_lock=True))
        env = s3_storage_env(storage, s3_env)
    keys = tmp_path / "keys"
    async with sim.serve() as base:
        settings = make_settings(
            sim, base, storage, str(tmp_path / "state.sqlite3"), privacy=PrivacySettings(keys=keys)
        )
        await backfill(settings, sim)
    work = tmp_path / "work"
    work.mkdir()
    env |= {
        "ARCHIVER_STATE__URL": str(work / "state.sqlite3"),
        "ARCHIVER_OPERATOR": "dpo-1",
        "ARCHIVER_SOURCE__TIMEZONE": sim.config.timezone,
        "ARCHIVER_PRIVACY__KEYS": str(keys),
        "ARCHIVER_CONSOLE__INDEX_PATH": str(work / "index.sqlite3"),
    }
    return sim, storage, cli_env(env), work, keys


async def test_sealed_numbers_are_found_then_erased_by_destroying_their_key(sealed, s3_env):
    sim, storage, env, work, keys = sealed

    async def cli(*args: str):
        return await run_cli(*args, env=env, cwd=work)

    objects = await _objects(storage)
    lines = [
        json.loads(line)
        for key, blob in objects.items()
        if key.startswith("manifests/")
        for line in blob.splitlines()
        if line.strip()
    ]
    assert len(lines) == len(sim.calls)
    manifest_bytes = b"".join(blob for key, blob in objects.items() if key.startswith("manifests/"))
    numbers = {n for c in sim.calls for n in (c.from_number, c.to_number) if len(phone_key(n)) >= 8}
    assert numbers, "the seed must give calls with phone numbers"
    for number in numbers:
        for spelled in _spellings(number):
            assert spelled not in manifest_bytes, f"a manifest line names {number}"
    assert all("from_number_hash" in ln and "from_number" not in ln for ln in lines)

    # The customer number of most calls (a hotline is on every inbound call).
    counts = Counter(phone_key(n) for c in sim.calls for n in (c.from_number, c.to_number))
    customers = [n for n in numbers if phone_key(n).startswith("0") and len(phone_key(n)) >= 10]
    number = max(customers, key=lambda n: (counts[phone_key(n)], n))
    key = phone_key(number)
    truth = {
        c.sip_call_id
        for c in sim.calls
        if key in (phone_key(c.from_number), phone_key(c.to_number))
    }
    # The provider leaves a side out now and then: the calls are those whose lines
    # carry the number's keyed hash (the test reads the search key from the key place).
    search_key = bytes.fromhex((keys / "search.key").read_text().strip())
    digest = keyed_hash(search_key, key)
    mine = {
        ln["sip_call_id"]
        for ln in lines
        if digest in (ln["from_number_hash"], ln["to_number_hash"])
    }
    assert len(mine) >= 2, "the seed must give the number several calls"
    assert mine <= truth
    # Every way the provider wrote it, for the checks that it is shown nowhere afterwards.
    written = {n for c in sim.calls for n in (c.from_number, c.to_number) if phone_key(n) == key}
    spellings = {s for n in written for s in _spellings(n)}
    # Every spelling on the folder; one on S3, whose run is the longer (CI's budget).
    spelled_as = [key, "+84 " + key[1:3] + " " + key[3:6] + " " + key[6:], "84-" + key[1:]]
    for spelled in spelled_as[1:2] if storage.is_s3 else spelled_as:
        report = await cli("subject", "--phone", spelled, "--format", "json")
        assert report.code == 0, report.err
        rows = json.loads(report.out)
        assert {r["sip_call_id"] for r in rows} == mine
        sides = [(r["from_number"] or "", r["to_number"] or "") for r in rows]
        assert all(key in (phone_key(a), phone_key(b)) for a, b in sides)
    found = await cli("search", "--phone", "+84" + key[1:], "--format", "json")
    assert found.code == 0, found.err
    assert {r["sip_call_id"] for r in json.loads(found.out)} == mine
    assert any(n in found.out for n in written)
    if not storage.is_s3:
        exported = await cli("export", "--search", "--phone", key, "-o", str(work / "mine.zip"))
        assert exported.code == 0, exported.err
        with zipfile.ZipFile(work / "mine.zip") as archive:
            assert any(n in archive.read("manifest.json").decode() for n in written)

    held = next(c for c in sim.calls if c.sip_call_id in mine)
    hold_key = None
    if storage.is_s3:
        # A legal hold keeps one call: the erasure keeps the key too, and says why.
        bucket, prefix = storage.bucket_and_prefix
        hold_key = f"{prefix}recordings/{held.started_at:%Y/%m/%d}/{held.sip_call_id}.{held.fmt}"
        async with admin_client(s3_env) as admin:
            await admin.put_object_legal_hold(
                Bucket=bucket, Key=hold_key, LegalHold={"Status": "ON"}
            )
        first = await cli("subject", "--phone", key, "--erase", "--approved-by", "DPO")
        assert first.code == 0, first.err
        assert "subject key: kept: 1 call(s) of the number stay archived" in first.err
        assert any(n in first.out for n in written), "the key kept: the number still shown"
        async with admin_client(s3_env) as admin:
            await admin.put_object_legal_hold(
                Bucket=bucket, Key=hold_key, LegalHold={"Status": "OFF"}
            )
    erased = await cli("subject", "--phone", "+84" + key[1:], "--erase", "--approved-by", "DPO")
    assert erased.code == 0, erased.err
    assert "subject key: destroyed" in erased.err

    # Afterwards: found by keyed hash (the search key remains), the number shown nowhere.
    after = await cli("subject", "--phone", key, "--format", "json")
    assert after.code == 0, after.err
    rows = json.loads(after.out)
    assert {r["sip_call_id"] for r in rows} == mine
    assert all("(erasure)" in r["state"] for r in rows)
    assert all("[erased]" in (r["from_number"], r["to_number"]) for r in rows)
    everything = await cli("search", "--format", "csv")
    assert everything.code == 0, everything.err
    for result in (after, everything, erased):
        for spelled in spellings:
            assert spelled.decode() not in result.out + result.err
    verified = await cli("verify")
    assert verified.code == 0, verified.out + verified.err
    assert f"DISPOSED {len(mine)} recording(s)" in verified.out
    for name, blob in (await _objects(storage)).items():
        for spelled in spellings:
            assert spelled not in blob, f"{name} names the erased number"
    subjects = keys / "subjects"
    assert not (subjects / f"{digest}.key").exists()
    assert any(subjects.iterdir()), "the other numbers' keys are left as they were"

    records = [json.loads(blob) for name, blob in (await _audit_objects(storage)).items()]
    requests = [r for r in records if r["action"] == "subject"]
    assert all("phone" not in r["target"] and "phone_hash" in r["target"] for r in requests)
    fates = [r["details"]["subject_key"] for r in requests if r["details"]["erase"]]
    assert fates[-1] == "destroyed"
    assert len(fates) == (2 if storage.is_s3 else 1)


async def _audit_objects(storage: StorageSettings) -> dict[str, bytes]:
    return {k: v for k, v in (await _objects(storage)).items() if k.startswith("_archiver/audit/")}


@pytest.mark.parametrize(
    ("target", "mode", "message"),
    [
        ("", 0o755, "open to other accounts (mode 755)"),
        ("search.key", 0o644, "open to other accounts (mode 644)"),
        ("missing", None, "No such file"),
    ],
)
async def test_a_key_place_open_to_others_is_refused_in_one_line(tmp_path, target, mode, message):
    keys = tmp_path / "keys"
    (keys / "subjects").mkdir(parents=True, mode=0o700)
    os.chmod(keys, 0o700)
    (keys / "search.key").write_text("00" * 32 + "\n")
    os.chmod(keys / "search.key", 0o600)
    (tmp_path / "archive" / "manifests").mkdir(parents=True)
    place = keys / target if target != "missing" else tmp_path / "missing"
    if mode is not None:
        os.chmod(place, mode)
    env = cli_env(
        {
            "ARCHIVER_STORAGE__URL": str(tmp_path / "archive"),
            "ARCHIVER_PRIVACY__KEYS": str(place if target in ("", "missing") else keys),
        }
    )
    result = await run_cli("search", "--phone", "0901234567", env=env, cwd=tmp_path)
    assert result.code == 2, result.out + result.err
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "00" * 32 not in result.err


async def test_check_names_a_key_place_that_cannot_honour_an_erasure(tmp_path):
    """``archiver check``: a key place open to others, or inside the archive's folder, is a
    settings problem (exit 2, one line each); a private one is OK."""
    archive = tmp_path / "archive"
    inside, open_, private = archive / "keys", tmp_path / "open", tmp_path / "private"
    for folder, mode in ((inside, 0o700), (open_, 0o755), (private, 0o700)):
        folder.mkdir(parents=True)
        os.chmod(folder, mode)
    for keys, expected in (
        (inside, "privacy: ARCHIVER_PRIVACY__KEYS " + str(inside) + ": inside the archive"),
        (open_, "open to other accounts (mode 755)"),
    ):
        env = cli_env({"ARCHIVER_STORAGE__URL": str(archive), "ARCHIVER_PRIVACY__KEYS": str(keys)})
        result = await run_cli("check", env=env, cwd=tmp_path)
        assert result.code == 2, result.out + result.err
        privacy = [ln for ln in result.err.splitlines() if "privacy" in ln]
        assert len(privacy) == 1, result.err
        assert expected in privacy[0]
    env = cli_env({"ARCHIVER_STORAGE__URL": str(archive), "ARCHIVER_PRIVACY__KEYS": str(private)})
    result = await run_cli("check", env=env, cwd=tmp_path)
    assert "privacy: OK: key place" in result.out
