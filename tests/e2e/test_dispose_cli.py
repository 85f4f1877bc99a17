"""``archiver dispose`` as a records officer runs it: the CLI, on a local folder and on
SeaweedFS with Object Lock and versioning, then verify, get and reconcile after it.

The archive is written by an in-process backfill; a schedule of two rules keeps
outbound calls for a century and everything else a year, so every non-outbound
call (made in 2021) is due. On S3, one due recording is under a legal hold, one
under an Object Lock date, and one has a second version: dispose keeps the first
two (named, with the reason) and removes every version of the third.
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from tests.support.cli import cli_env, run_cli, s3_storage_env, source_env
from tests.support.pipeline import backfill, make_settings
from tests.support.seaweed import admin_client

RULES = """
[[rule]]
name = "outbound-century"
days = 36500
direction = "outbound"

[[rule]]
name = "one-year"
days = 365
"""


@pytest.fixture(params=["local", "s3"])
async def archived(request, tmp_path, make_bucket, s3_settings, s3_env):
    """(simulator, storage settings, CLI environment, working directory)."""
    sim = Simulator(SimConfig(seed=11, calls=12, recording_fraction=1.0, max_size=40_000))
    if request.param == "local":
        storage = StorageSettings(url=str(tmp_path / "archive"))
        env = {"ARCHIVER_STORAGE__URL": storage.url}
    else:
        storage = s3_settings(await make_bucket(object_lock=True))
        env = s3_storage_env(storage, s3_env)
    builder = tmp_path / "builder"
    builder.mkdir()
    async with sim.serve() as base:
        await backfill(make_settings(sim, base, storage, str(builder / "state.sqlite3")), sim)
    work = tmp_path / "work"
    work.mkdir()
    (work / "rules.toml").write_text(RULES)
    env |= {
        "ARCHIVER_STATE__URL": str(work / "state.sqlite3"),
        "ARCHIVER_OPERATOR": "records-1",
        "ARCHIVER_RETENTION__RULES_FILE": str(work / "rules.toml"),
        "ARCHIVER_SOURCE__TIMEZONE": sim.config.timezone,
        # The simulator sends some directions as numbers.
        "ARCHIVER_SOURCE__DIRECTION_CODES": "1=inbound,2=outbound,3=local",
    }
    return sim, storage, cli_env(env), work


def _keys(out: str, verb: str) -> set[str]:
    return {line.split()[1] for line in out.splitlines() if line.startswith(f"{verb}: ")}


async def _manifest_lines(storage: StorageSettings) -> list[dict]:
    async with open_store(storage) as store:
        keys = [o.key async for o in store.list("manifests/")]
        data = [b"".join([c async for c in store.read(k)]) for k in keys]
    return [json.loads(line) for blob in data for line in blob.splitlines() if line.strip()]


async def _audit(storage: StorageSettings, action: str) -> list[dict]:
    async with open_store(storage) as store:
        keys = [o.key async for o in store.list("_archiver/audit/")]
        records = [json.loads(b"".join([c async for c in store.read(k)])) for k in keys]
    return [r for r in records if r["action"] == action]


async def test_dispose_keeps_held_and_locked_and_leaves_proof(archived, s3_env):
    sim, storage, env, work = archived

    async def cli(*args: str, extra: dict[str, str] | None = None):
        return await run_cli(*args, env=env | (extra or {}), cwd=work)

    def key_of(call) -> str:
        return f"{storage.bucket_and_prefix[1] if storage.is_s3 else ''}recordings/" + (
            f"{call.started_at:%Y/%m/%d}/{call.sip_call_id}.{call.fmt}"
        )

    due = [c for c in sim.calls if c.direction != "outbound"]
    kept_by_rule = [c for c in sim.calls if c.direction == "outbound"]
    assert len(due) >= 4, "the seed must give calls to dispose of"
    assert kept_by_rule, "the seed must give calls a rule keeps"
    held, locked, versioned = due[0], due[1], due[2]
    if storage.is_s3:
        async with admin_client(s3_env) as admin:
            bucket = storage.bucket_and_prefix[0]
            await admin.put_object_legal_hold(
                Bucket=bucket, Key=key_of(held), LegalHold={"Status": "ON"}
            )
            until = datetime.now(UTC) + timedelta(days=2)
            await admin.put_object_retention(
                Bucket=bucket,
                Key=key_of(locked),
                Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
            )
            await admin.put_object(Bucket=bucket, Key=key_of(versioned), Body=b"a second version")

    try:
        listed = await cli("dispose", "--dry-run")
        assert listed.code == 0, listed.err
        expected_kept = {key_of(held), key_of(locked)} if storage.is_s3 else set()
        assert _keys(listed.out, "due") == {key_of(c) for c in due} - expected_kept
        assert _keys(listed.out, "kept") == expected_kept
        if storage.is_s3:
            assert f"kept: {key_of(held)}" in listed.out
            assert "legal hold" in listed.out
            assert "Object Lock GOVERNANCE until" in listed.out

        # Deleting needs a named approver, and a certificate file that can be written.
        refused = await cli("dispose")
        assert refused.code == 2
        assert "--approved-by" in refused.err
        (work / "taken.csv").write_text("x")
        taken = await cli("dispose", "--approved-by", "Officer A", "--certificate", "taken.csv")
        assert taken.code == 2
        assert "exists" in taken.err
        again = await cli("dispose", "--dry-run")
        assert _keys(again.out, "due") == _keys(listed.out, "due"), (
            "a refused run deleted something"
        )

        done = await cli("dispose", "--approved-by", "Officer A", "--certificate", "cert.json")
        assert done.code == 0, done.out + done.err
        disposed = {key_of(c) for c in due} - expected_kept
        assert _keys(done.out, "disposed") == disposed
        certificate = json.loads((work / "cert.json").read_text())
        assert {r["object_key"] for r in certificate["disposed"]} == disposed
        assert {r["rule"] for r in certificate["disposed"]} == {"one-year"}
        assert {r["approved_by"] for r in certificate["disposed"]} == {"Officer A"}
        assert (work / "cert.json").stat().st_mode & 0o777 == 0o600
        if storage.is_s3:
            async with admin_client(s3_env) as admin:
                versions = await admin.list_object_versions(
                    Bucket=storage.bucket_and_prefix[0], Prefix=key_of(versioned)
                )
                assert not versions.get("Versions")
                assert not versions.get("DeleteMarkers")
                for call in (held, locked):
                    await admin.head_object(Bucket=storage.bucket_and_prefix[0], Key=key_of(call))
        [record] = await _audit(storage, "dispose")
        assert record["result"] == "ok"
        assert record["details"]["approved_by"] == "Officer A"
        assert {d["object_key"] for d in record["details"]["disposed"]} == disposed
        assert {k["object_key"] for k in record["details"]["kept"]} == expected_kept

        verified = await cli("verify")
        assert verified.code == 0, verified.out + verified.err
        assert f"DISPOSED {len(disposed)} recording(s)" in verified.out
        # Only the recordings still stored count as verified.
        standing = len(await _manifest_lines(storage)) - len(disposed)
        assert f"verified {standing} object(s)" in verified.out

        gone = next(c for c in due if key_of(c) in disposed)
        got = await cli("get", gone.cdr_id, "-o", str(work / "x"))
        assert got.code == 4, got.err
        assert "disposed on" in got.err
        assert "under rule one-year" in got.err
        assert not (work / "x").exists()

        # Nothing left to do: a second run disposes of nothing and says so.
        second = await cli("dispose", "--approved-by", "Officer A")
        assert second.code == 0
        assert "disposed of 0 recording(s)" in second.out

        async with sim.serve() as base:
            reconciled = await cli(
                "reconcile",
                "--since",
                "2021-02-17",
                "--until",
                "2021-02-18",
                extra=source_env(base, sim),
            )
        assert reconciled.code == 0, reconciled.out + reconciled.err
        assert f"disposed: {len(disposed)} archived call(s)" in reconciled.err

        await _tamper_then_check(storage, s3_env, cli, key_of(kept_by_rule[0]))
    finally:
        if storage.is_s3:  # a held object outlives its bucket otherwise
            async with admin_client(s3_env) as admin:
                await admin.put_object_legal_hold(
                    Bucket=storage.bucket_and_prefix[0],
                    Key=key_of(held),
                    LegalHold={"Status": "OFF"},
                )


async def _tamper_then_check(storage, s3_env, cli, undisposed_key: str) -> None:
    """A tombstone edited, then removed, is caught; a recording deleted without one is
    MISSING."""
    async with open_store(storage) as store:
        [stone] = [o.key async for o in store.list("_archiver/tombstones/")]
        original = b"".join([c async for c in store.read(stone)])
    edited = original.replace(b'"rule":"one-year"', b'"rule":"one-week"', 1)
    assert edited != original
    full = f"{storage.bucket_and_prefix[1]}{stone}" if storage.is_s3 else stone
    if storage.is_s3:
        async with admin_client(s3_env) as admin:
            put = await admin.put_object(Bucket=storage.bucket_and_prefix[0], Key=full, Body=edited)
            bad = await cli("verify")
            assert bad.code == 5, bad.out
            assert "MANIFEST-ALTERED" in bad.out.upper()
            assert "tombstones are not applied" in bad.out
            await admin.delete_object(
                Bucket=storage.bucket_and_prefix[0], Key=full, VersionId=put["VersionId"]
            )
            assert (await cli("verify")).code == 0
            await admin.delete_object(Bucket=storage.bucket_and_prefix[0], Key=full)
            removed = await cli("verify")
            assert removed.code == 5
            assert "tombstone(s) recorded by" in removed.out
            versions = await admin.list_object_versions(
                Bucket=storage.bucket_and_prefix[0], Prefix=full
            )
            for marker in versions.get("DeleteMarkers", []):
                await admin.delete_object(
                    Bucket=storage.bucket_and_prefix[0], Key=full, VersionId=marker["VersionId"]
                )
            assert (await cli("verify")).code == 0
            await admin.delete_object(Bucket=storage.bucket_and_prefix[0], Key=undisposed_key)
    else:
        path = Path(storage.url) / stone
        path.write_bytes(edited)
        bad = await cli("verify")
        assert bad.code == 5, bad.out
        assert "tombstones are not applied" in bad.out
        path.write_bytes(original)
        assert (await cli("verify")).code == 0
        path.unlink()
        removed = await cli("verify")
        assert removed.code == 5
        assert "tombstone(s) recorded by" in removed.out
        path.write_bytes(original)
        (Path(storage.url) / undisposed_key).unlink()
    missing = await cli("verify")
    assert missing.code == 5
    assert "MISSING" in missing.out.upper()
    assert undisposed_key.split("/")[-1] in missing.out


SUBJECT_RULES = """
[[rule]]
name = "bank-outbound"
days = 36500
legal = true
direction = "outbound"

[[rule]]
name = "service"
days = 36500
"""


async def test_a_subject_request_finds_exports_and_erases_what_it_may(archived, s3_env):
    sim, storage, env, work = archived
    (work / "rules.toml").write_text(SUBJECT_RULES)

    async def cli(*args: str):
        return await run_cli(*args, env=env, cwd=work)

    def key_of(call) -> str:
        prefix = storage.bucket_and_prefix[1] if storage.is_s3 else ""
        return f"{prefix}recordings/{call.started_at:%Y/%m/%d}/{call.sip_call_id}.{call.fmt}"

    # What the manifest says of each call's numbers (a provider may leave one side out).
    lines = await _manifest_lines(storage)
    by_id = {c.sip_call_id: c for c in sim.calls}

    def calls_of(n: str) -> list:
        return [
            by_id[ln["sip_call_id"]] for ln in lines if n in (ln["from_number"], ln["to_number"])
        ]

    # The number of most calls (a service number here), asked as "1900-1919"; and a
    # landline of several calls asked with +84 and spaces instead of its leading 0.
    numbers = Counter(n for ln in lines for n in (ln["from_number"], ln["to_number"]) if n)
    number = max(numbers, key=lambda n: (numbers[n], n))
    mine = calls_of(number)
    legal = [c for c in mine if c.direction == "outbound"]
    erasable = [c for c in mine if c.direction != "outbound"]
    assert legal, "the seed must give the number a call a legal rule keeps"
    assert len(erasable) >= 2, "the seed must give the number erasable calls"
    spelled = f"{number[:4]}-{number[4:]}"
    landline = next(n for n, k in numbers.most_common() if n.startswith("0") and k > 1)
    spelled_landline = "+84 " + " ".join([landline[1:3], landline[3:7], landline[7:]])
    theirs = {c.sip_call_id for c in calls_of(landline)}
    held = erasable[0]
    if storage.is_s3:
        async with admin_client(s3_env) as admin:
            await admin.put_object_legal_hold(
                Bucket=storage.bucket_and_prefix[0], Key=key_of(held), LegalHold={"Status": "ON"}
            )
    try:
        report = await cli("subject", "--phone", spelled, "--format", "json")
        assert report.code == 0, report.err
        rows = json.loads(report.out)
        assert {r["sip_call_id"] for r in rows} == {c.sip_call_id for c in mine}
        assert {r["state"] for r in rows} == {"archived"}
        other = await cli("subject", "--phone", spelled_landline, "--format", "json")
        assert {r["sip_call_id"] for r in json.loads(other.out)} == theirs

        exported = await cli("subject", "--phone", spelled, "--export", "subject.zip")
        assert exported.code == 0, exported.err
        with zipfile.ZipFile(work / "subject.zip") as archive:
            sums = archive.read("SHA256SUMS").decode()
        assert {line.split()[0] for line in sums.splitlines() if "recordings/" in line} == {
            c.sha256() for c in mine
        }

        refused = await cli("subject", "--phone", spelled, "--erase")
        assert refused.code == 2
        assert "--approved-by" in refused.err

        erased = await cli(
            "subject", "--phone", spelled, "--erase", "--approved-by", "DPO", "--format", "json"
        )
        assert erased.code == 0, erased.err
        states = {r["object_key"]: r["state"] for r in json.loads(erased.out)}
        for call in legal:
            assert states[key_of(call)].startswith("refused: rule bank-outbound (a legal"), states
        gone = [c for c in erasable if not (storage.is_s3 and c is held)]
        for call in gone:
            assert states[key_of(call)] == "erased"
        if storage.is_s3:
            assert states[key_of(held)].startswith("refused: legal hold")

        verified = await cli("verify")
        assert verified.code == 0, verified.out + verified.err
        assert f"DISPOSED {len(gone)} recording(s)" in verified.out
        after = await cli("subject", "--phone", number, "--format", "json")
        states = {r["object_key"]: r["state"] for r in json.loads(after.out)}
        assert all("(erasure)" in states[key_of(c)] for c in gone)
        got = await cli("get", gone[0].cdr_id, "-o", str(work / "x"))
        assert got.code == 4
        assert "under rule service (erasure" in got.err
    finally:
        if storage.is_s3:
            async with admin_client(s3_env) as admin:
                await admin.put_object_legal_hold(
                    Bucket=storage.bucket_and_prefix[0],
                    Key=key_of(held),
                    LegalHold={"Status": "OFF"},
                )
    records = await _audit(storage, "subject")
    assert len(records) == 5
    assert {r["result"] for r in records} == {"ok"}
    erasures = [r for r in records if r["details"]["erase"]]
    assert [r["details"]["approved_by"] for r in erasures] == ["DPO"]
    assert len(await _audit(storage, "export")) == 2  # started, ok


@pytest.mark.parametrize(
    ("args", "rules", "message"),
    [
        (["dispose", "--as-of", "yesterday", "--dry-run"], None, "usage error"),
        (["dispose", "--as-of", "2999-01-01", "--approved-by", "A"], None, "only --dry-run"),
        (["dispose", "--dry-run"], "[[rule]]\nname='x'\n", "days must be"),
        (["dispose", "--dry-run"], "not toml at all", "not TOML"),
        (["dispose", "--approved-by", " "], None, "--approved-by"),
        (["dispose", "--approved-by", "A\tB"], None, "--approved-by"),
        (["dispose", "--approved-by", "A", "--certificate", "c.txt"], None, ".csv or .json"),
        (["dispose", "--approved-by", "A", "--certificate", "no/such/c.csv"], None, "no such"),
        (["subject", "--phone", "abc"], None, "no digits"),
        (["subject", "--phone", "0903123456", "--erase"], None, "--approved-by"),
        (["subject", "--phone", "0903123456", "--approved-by", "A"], None, "only with --erase"),
        (["subject", "--phone", "0903123456", "--export", "."], None, "--export"),
        (["subject"], None, "--phone"),
        (["dispose", "--dry-run"], "", "no archive"),
    ],
)
async def test_bad_requests_are_one_line_and_exit_2(tmp_path, args, rules, message):
    """Every bad input: one line naming it, exit 2, nothing written anywhere."""
    env = {"ARCHIVER_STORAGE__URL": str(tmp_path / "archive")}
    if rules is not None:
        (tmp_path / "rules.toml").write_text(rules)
        env["ARCHIVER_RETENTION__RULES_FILE"] = str(tmp_path / "rules.toml")
    result = await run_cli(*args, env=cli_env(env), cwd=tmp_path)
    assert result.code == 2, result.out + result.err
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert not (tmp_path / "archive").exists()
