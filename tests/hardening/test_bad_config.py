"""Bad settings and storage that refuses us, through ``archiver check`` and ``backfill``.

A bad setting: exit 2 and one line naming the variable, never its value.
Wrong credentials, an unknown bucket, a denied write: one line naming the
cause (exit 1), no traceback, no secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.simulator import Simulator
from tests.support.cli import Result, archiver_env, run_cli, s3_storage_env
from tests.support.seaweed import (
    READONLY_ACCESS_KEY,
    READONLY_SECRET_KEY,
    MakeBucket,
    S3Settings,
    SeaweedServer,
)

SINCE, UNTIL = "2021-02-17 08:00", "2021-02-17 09:00"
COMMANDS = {"check": ("check",), "backfill": ("backfill", "--since", SINCE, "--until", UNTIL)}


pytestmark = pytest.mark.sim(seed=1, calls=3, max_size=50_000)


def one_line(r: Result) -> str:
    assert "Traceback" not in r.err, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("archiver: "), lines[0]
    return lines[0]


BAD_SETTINGS = [
    ("ARCHIVER_CONCURRENCY", "0", "ARCHIVER_CONCURRENCY: Input should be greater than"),
    ("ARCHIVER_SOURCE__BASE_URL", "ftp://pbx.example.vn", "must be an http:// or https:// URL"),
    ("ARCHIVER_SOURCE__TIMEZONE", "Mars/Olympus_Mons", "unknown time zone"),
    ("ARCHIVER_SOURCE__PAGE_SIZE", "s3cr3t-looking-value", "ARCHIVER_SOURCE__PAGE_SIZE"),
    ("ARCHIVER_STORAGE__URL", "s3://", "needs a bucket"),
    ("ARCHIVER_STORAGE__ENDPOINT_URL", "minio.local:9000", "ARCHIVER_STORAGE__ENDPOINT_URL"),
    ("ARCHIVER_STORAGE__PART_SIZE", "1024", "ARCHIVER_STORAGE__PART_SIZE"),
    ("ARCHIVER_STORAGE__VERIFY_TLS", "perhaps", "ARCHIVER_STORAGE__VERIFY_TLS"),
    ("ARCHIVER_RETRY__MAX_ATTEMPTS", "-1", "ARCHIVER_RETRY__MAX_ATTEMPTS"),
    ("ARCHIVER_WINDOW", "10", "ARCHIVER_WINDOW"),
    ("ARCHIVER_STORAGE__KEY_TEMPLATE", "recordings/{sip_call_id}", "needs {ext}"),
    ("ARCHIVER_STORAGE__KEY_TEMPLATE", "../{sip_call_id}.{ext}", "ARCHIVER_STORAGE__KEY_TEMPLATE"),
    # postgresql:// and postgres:// are states now (tests/integration/state/test_postgres.py).
    ("ARCHIVER_STATE__URL", "mysql://db.example.vn/archiver", "ARCHIVER_STATE__URL"),
]


# `check` validates the settings too: the same one line, before touching anything.
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("name", "value", "message"), BAD_SETTINGS)
async def test_a_bad_setting_is_exit_2_and_one_line(
    sim: Simulator,
    tmp_path: Path,
    command: str,
    name: str,
    value: str,
    message: str,
) -> None:
    env = archiver_env(tmp_path, sim=sim, **{name: value})
    r = await run_cli(*COMMANDS[command], env=env, cwd=tmp_path)
    assert r.code == 2, (r.code, r.out, r.err)
    line = one_line(r)
    assert message in line
    assert "s3cr3t" not in r.out + r.err, "a value that could be a secret is echoed"
    assert "settings: OK" not in r.out
    assert sim.stats["recording_requests"] == 0


async def test_several_bad_settings_are_named_in_one_line(sim: Simulator, tmp_path: Path) -> None:
    env = archiver_env(tmp_path, sim=sim, ARCHIVER_CONCURRENCY="many", ARCHIVER_GRACE="-3")
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 2
    line = one_line(r)
    assert "ARCHIVER_CONCURRENCY" in line
    assert "ARCHIVER_GRACE" in line


# -- storage that refuses us ---------------------------------------------------------------


STORAGE_REFUSALS = [
    pytest.param(
        {"AWS_SECRET_ACCESS_KEY": "wrong-secret-k3y"},
        "the secret access key does not match the access key ID",
        id="wrong-secret",
    ),
    pytest.param(
        {"AWS_ACCESS_KEY_ID": "AKIANOBODYKNOWS"},
        "the access key ID is unknown",
        id="unknown-access-key",
    ),
    pytest.param({"bucket": "no-such-bucket-here"}, "does not exist", id="unknown-bucket"),
    pytest.param(
        {"AWS_ACCESS_KEY_ID": READONLY_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": READONLY_SECRET_KEY},
        "access denied to bucket",
        id="denied-write",
    ),
    pytest.param(
        {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
        "no AWS credentials",
        id="no-credentials",
    ),
]


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("change", "cause"), STORAGE_REFUSALS)
async def test_storage_refusals_name_their_cause(
    sim: Simulator,
    tmp_path: Path,
    make_bucket: MakeBucket,
    s3_settings: S3Settings,
    seaweed: SeaweedServer,
    command: str,
    change: dict[str, str],
    cause: str,
) -> None:
    change = dict(change)
    bucket = change.pop("bucket", None) or await make_bucket()
    storage = s3_storage_env(s3_settings(bucket), seaweed)
    storage.update(change)
    storage = {k: v for k, v in storage.items() if v}
    r = await run_cli(
        *COMMANDS[command], env=archiver_env(tmp_path, sim=sim, storage=storage), cwd=tmp_path
    )
    assert r.code == 1, (r.out, r.err)
    assert "Traceback" not in r.err, r.err
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("archiver: "), r.err
    assert cause in last, last
    assert f"s3://{bucket}" in last, "the message names the storage"
    for secret in (seaweed.secret_key, READONLY_SECRET_KEY, "wrong-secret-k3y"):
        assert secret not in r.out + r.err
    if command == "backfill":
        # Nothing is marked archived, and a fixed storage lets the same command finish.
        assert "archived 0" in r.out or r.out == ""
