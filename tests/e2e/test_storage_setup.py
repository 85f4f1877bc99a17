"""A new operator's storage (issue 21): AWS credentials from the settings' own places,
``archiver init-storage``, and ``check`` naming what it used and what is missing.

The CLI as a subprocess against SeaweedFS and a local folder.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from archiver.simulator import Simulator
from tests.support.cli import archiver_env, cli_env, run_cli
from tests.support.seaweed import (
    SeaweedProcess,
    SeaweedServer,
    admin_client,
    empty_and_delete_bucket,
)

pytestmark = pytest.mark.sim(seed=5, calls=3)


def s3_settings_block(seaweed: SeaweedServer, bucket: str, *, keys: bool = True) -> str:
    """An .env file as the docs show it: storage and AWS keys in one block."""
    lines = [
        f"ARCHIVER_STORAGE__URL=s3://{bucket}/site",
        f"ARCHIVER_STORAGE__ENDPOINT_URL={seaweed.endpoint_url}",
        "ARCHIVER_STORAGE__ADDRESSING_STYLE=path",
        f"AWS_DEFAULT_REGION={seaweed.region}",
    ]
    if keys:
        lines += [
            f"AWS_ACCESS_KEY_ID={seaweed.access_key}",
            f"AWS_SECRET_ACCESS_KEY={seaweed.secret_key}",
        ]
    return "\n".join(lines) + "\n"


def no_aws_env(tmp_path: Path, sim: Simulator, **extra: str) -> dict[str, str]:
    """The CLI's environment with no AWS variable but what the test gives (no profile
    file of the developer's, no instance metadata)."""
    env = archiver_env(tmp_path, sim=sim)
    del env["ARCHIVER_STORAGE__URL"]
    return env | {
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


@pytest.fixture
async def bucket_name(seaweed: SeaweedServer) -> object:
    """A bucket name nobody has made yet; the bucket is removed after the test if made."""
    name = f"op-{uuid.uuid4().hex[:12]}"
    yield name
    async with admin_client(seaweed) as client:
        try:
            await client.head_bucket(Bucket=name)
        except ClientError:
            return
        await empty_and_delete_bucket(client, name)


async def bucket_exists(seaweed: SeaweedServer, name: str) -> bool:
    async with admin_client(seaweed) as client:
        try:
            await client.head_bucket(Bucket=name)
        except ClientError:
            return False
        return True


@pytest.mark.parametrize("place", [".env", "--env-file"])
async def test_aws_keys_in_the_settings_file_are_used_and_named_never_shown(
    sim: Simulator, seaweed: SeaweedServer, bucket_name: str, tmp_path: Path, place: str
) -> None:
    async with admin_client(seaweed) as client:
        await client.create_bucket(Bucket=bucket_name)
    env_file = tmp_path / (".env" if place == ".env" else "site.env")
    env_file.write_text(s3_settings_block(seaweed, bucket_name))
    args = ("check",) if place == ".env" else ("check", "--env-file", str(env_file))
    r = await run_cli(*args, env=no_aws_env(tmp_path, sim), cwd=tmp_path)
    assert r.code == 0, r.err
    assert f"storage: OK: s3://{bucket_name}/site is reachable and writable" in r.out
    assert f"AWS_ACCESS_KEY_ID from {env_file}" in r.out
    assert seaweed.secret_key not in r.out + r.err
    # ...and a backfill writes with them too.
    dates = ("--since", "2021-02-17", "--until", "2021-02-18")
    r = await run_cli("backfill", *args[1:], *dates, env=no_aws_env(tmp_path, sim), cwd=tmp_path)
    assert r.code == 0, r.err


async def test_the_environment_wins_over_the_file_and_half_a_key_is_refused(
    sim: Simulator, seaweed: SeaweedServer, bucket_name: str, tmp_path: Path
) -> None:
    async with admin_client(seaweed) as client:
        await client.create_bucket(Bucket=bucket_name)
    (tmp_path / ".env").write_text(s3_settings_block(seaweed, bucket_name))
    wrong = no_aws_env(
        tmp_path, sim, AWS_ACCESS_KEY_ID="AKIAWRONGWRONG", AWS_SECRET_ACCESS_KEY="wrong-secret-x"
    )
    r = await run_cli("check", env=wrong, cwd=tmp_path)
    assert r.code == 1, r.out
    assert "archiver: storage: " in r.err
    assert "the access key ID is unknown to the storage" in r.err
    assert "wrong-secret-x" not in r.out + r.err

    (tmp_path / ".env").write_text(
        s3_settings_block(seaweed, bucket_name, keys=False) + "AWS_ACCESS_KEY_ID=AKIAHALF\n"
    )
    r = await run_cli("check", env=no_aws_env(tmp_path, sim), cwd=tmp_path)
    assert r.code == 2, (r.out, r.err)
    assert r.err.count("\n") == 1, r.err
    assert f"AWS_ACCESS_KEY_ID is set in {tmp_path / '.env'} but AWS_SECRET_ACCESS_KEY is not" in (
        r.err
    )
    assert "Traceback" not in r.err


async def test_a_profile_named_in_the_settings_file_is_used_and_named(
    sim: Simulator, seaweed: SeaweedServer, bucket_name: str, tmp_path: Path
) -> None:
    async with admin_client(seaweed) as client:
        await client.create_bucket(Bucket=bucket_name)
    credentials = tmp_path / "aws-credentials"
    credentials.write_text(
        "[archive-writer]\n"
        f"aws_access_key_id = {seaweed.access_key}\n"
        f"aws_secret_access_key = {seaweed.secret_key}\n"
    )
    (tmp_path / ".env").write_text(
        s3_settings_block(seaweed, bucket_name, keys=False) + "AWS_PROFILE=archive-writer\n"
    )
    env = no_aws_env(tmp_path, sim, AWS_SHARED_CREDENTIALS_FILE=str(credentials))
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    assert "profile 'archive-writer'" in r.out
    assert seaweed.secret_key not in r.out + r.err

    (tmp_path / ".env").write_text(
        s3_settings_block(seaweed, bucket_name, keys=False) + "AWS_PROFILE=no-such-profile\n"
    )
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 1
    assert "no-such-profile" in r.err
    assert "Traceback" not in r.err


async def test_check_names_a_missing_bucket_without_creating_it_then_init_storage_makes_it(
    sim: Simulator, seaweed: SeaweedServer, bucket_name: str, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(s3_settings_block(seaweed, bucket_name))
    env = no_aws_env(tmp_path, sim)
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 1, r.out
    assert (
        f"archiver: storage: s3://{bucket_name}/site: bucket {bucket_name!r} does not exist "
        "(create it with 'archiver init-storage')" in r.err.splitlines()
    )
    assert not await bucket_exists(seaweed, bucket_name)

    r = await run_cli("init-storage", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    assert f"bucket: {bucket_name} created" in r.out
    assert "versioning: enabled" in r.out
    assert "lifecycle: rule 'archiver-running-markers' added" in r.out
    async with admin_client(seaweed) as client:
        versioning = await client.get_bucket_versioning(Bucket=bucket_name)
        assert versioning["Status"] == "Enabled"
        rules = (await client.get_bucket_lifecycle_configuration(Bucket=bucket_name))["Rules"]
    [rule] = [r for r in rules if r["ID"] == "archiver-running-markers"]
    assert rule["Filter"]["Prefix"] == "site/_archiver/running/"
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1

    again = await run_cli("init-storage", env=env, cwd=tmp_path)
    assert again.code == 0, again.err
    assert f"bucket: {bucket_name} exists" in again.out
    assert "versioning: already enabled" in again.out
    assert "already there" in again.out
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 0, r.err


async def test_init_storage_keeps_other_rules_and_enables_object_lock_as_set(
    sim: Simulator, seaweed: SeaweedServer, bucket_name: str, tmp_path: Path
) -> None:
    async with admin_client(seaweed) as client:
        await client.create_bucket(Bucket=bucket_name)
        other = {"ID": "theirs", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled"}
        other["Expiration"] = {"Days": 3}
        await client.put_bucket_lifecycle_configuration(
            Bucket=bucket_name, LifecycleConfiguration={"Rules": [other]}
        )
    (tmp_path / ".env").write_text(
        s3_settings_block(seaweed, bucket_name)
        + "ARCHIVER_STORAGE__OBJECT_LOCK_MODE=GOVERNANCE\nARCHIVER_STORAGE__RETENTION_DAYS=1\n"
    )
    r = await run_cli("init-storage", env=no_aws_env(tmp_path, sim), cwd=tmp_path)
    assert r.code == 0, r.err
    assert "object lock: enabled; recordings, manifests and audit records are locked" in r.out
    async with admin_client(seaweed) as client:
        lock = await client.get_object_lock_configuration(Bucket=bucket_name)
        rules = (await client.get_bucket_lifecycle_configuration(Bucket=bucket_name))["Rules"]
    assert lock["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    # No bucket default retention: it would lock the archiver's own working objects.
    assert "Rule" not in lock["ObjectLockConfiguration"]
    assert sorted(rule["ID"] for rule in rules) == ["archiver-running-markers", "theirs"]


async def test_init_storage_without_rights_is_one_line(
    sim: Simulator, seaweed: SeaweedServer, bucket_name: str, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        s3_settings_block(seaweed, bucket_name, keys=False)
        + "AWS_ACCESS_KEY_ID=archiver-readonly\n"
        + "AWS_SECRET_ACCESS_KEY=archiver-readonly-secret-key\n"
    )
    r = await run_cli("init-storage", env=no_aws_env(tmp_path, sim), cwd=tmp_path)
    assert r.code == 1, r.out
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert bucket_name in r.err
    assert "Traceback" not in r.err
    assert not await bucket_exists(seaweed, bucket_name)


# -- a local folder ---------------------------------------------------------------------------


async def test_check_leaves_nothing_in_a_local_folder_and_init_storage_makes_it_private(
    sim: Simulator, tmp_path: Path
) -> None:
    env = archiver_env(tmp_path, sim=sim)
    archive = tmp_path / "archive"
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    assert "does not exist yet" in r.out
    assert not archive.exists()

    r = await run_cli("init-storage", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    assert f"directory: {archive} created, mode 0700" in r.out
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700

    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    assert "storage: OK" in r.out
    assert list(archive.rglob("*")) == []  # no empty _archiver/check/ left behind

    archive.chmod(0o755)
    r = await run_cli("init-storage", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    assert "mode 0755: wider than 0700" in r.out


async def test_init_storage_on_a_file_is_one_line(sim: Simulator, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    env = cli_env(archiver_env(tmp_path, sim=sim) | {"ARCHIVER_STORAGE__URL": "a-file"})
    r = await run_cli("init-storage", env=env, cwd=tmp_path)
    assert r.code == 1
    assert r.err.strip() == f"archiver: {tmp_path / 'a-file'}: exists and is not a directory"


@pytest.fixture(scope="module")
def creating_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A SeaweedFS as it comes: it creates a bucket on the first write into it."""
    process = SeaweedProcess(tmp_path_factory.mktemp("seaweed-creating"), auto_create_buckets=True)
    server = process.start()
    try:
        yield server
    finally:
        process.stop()


async def test_check_on_a_server_that_creates_buckets_names_the_misspelled_one(
    sim: Simulator, creating_seaweed: SeaweedServer, tmp_path: Path
) -> None:
    misspelled = f"op-{uuid.uuid4().hex[:12]}"
    (tmp_path / ".env").write_text(s3_settings_block(creating_seaweed, misspelled))
    r = await run_cli("check", env=no_aws_env(tmp_path, sim), cwd=tmp_path)
    # The old check wrote its probe, which made the bucket, and said "writable".
    assert r.code == 1, r.out
    assert "is reachable and writable" not in r.out
    assert f"bucket {misspelled!r} does not exist" in r.err
    assert not await bucket_exists(creating_seaweed, misspelled)
