"""``archiver export``: the console's ZIP export from the command line (issue 21), as a
subprocess over an archive of the simulator's calls."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from archiver.simulator import Simulator
from tests.support.cli import QUICK, archiver_env, run_cli, s3_storage_env
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer, admin_client

SINCE, UNTIL = "2021-02-17", "2021-02-18"
pytestmark = pytest.mark.sim(seed=8, calls=5, recording_fraction=1.0, max_size=40_000)


async def archived(sim: Simulator, tmp_path: Path) -> dict[str, str]:
    env = archiver_env(tmp_path, sim=sim, tuning=QUICK)
    r = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    return env


async def audit(env: dict[str, str], cwd: Path) -> list[tuple[str, str]]:
    r = await run_cli("audit", "--format", "json", "--action", "export", env=env, cwd=cwd)
    assert r.code == 0, r.err
    return [(x["action"], x["result"]) for x in json.loads(r.out)]


def check_zip(path: Path, count: int) -> list[dict[str, object]]:
    """The ZIP as sha256sum -c would check it; the manifest lines it holds."""
    with zipfile.ZipFile(path) as z:
        sums = z.read("SHA256SUMS").decode().splitlines()
        assert len(sums) == count + 2
        for line in sums:
            digest, name = line.split("  ", 1)
            assert hashlib.sha256(z.read(name)).hexdigest() == digest, name
        assert len([n for n in z.namelist() if n.startswith("recordings/")]) == count
        return list(json.loads(z.read("manifest.json")))


async def test_export_of_ids_and_of_a_search_is_verified_and_audited(
    sim: Simulator, tmp_path: Path
) -> None:
    env = await archived(sim, tmp_path)
    first, second = sim.calls[0], sim.calls[1]
    out = tmp_path / "two.zip"
    r = await run_cli(
        "export", first.sip_call_id, second.cdr_id, first.cdr_id, "-o", str(out),
        "--reason", "case 12", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert f"{out}: 2 call(s)" in r.out
    lines = check_zip(out, 2)
    assert sorted(x["cdr_id"] for x in lines) == sorted([first.cdr_id, second.cdr_id])
    assert out.stat().st_mode & 0o777 == 0o600
    assert await audit(env, tmp_path) == [("export", "started"), ("export", "ok")]

    everything = tmp_path / "all.zip"
    r = await run_cli(
        "export", "--search", "--since", SINCE, "--until", UNTIL, "-o", str(everything),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert r.code == 0, r.err
    assert len(check_zip(everything, 5)) == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


BAD_EXPORTS = [
    (("no-such-call",), 4, "no archived call with id 'no-such-call'"),
    ((), 2, "usage error: name the calls: IDs, or --search"),
    (("x", "--search", "--phone", "1"), 2, "usage error: name the calls"),
    (("x", "--phone", "1"), 2, "usage error: --phone: only with --search"),
    (("--search",), 2, "usage error: --search needs a criterion"),
    (("--search", "--since", "2020-01-01", "--until", "2020-01-02"), 2, "finds no call"),
    (("x", "--search", "--since", "2021-13-01"), 2, "usage error: "),
]


async def test_bad_exports_are_one_line_and_write_nothing(sim: Simulator, tmp_path: Path) -> None:
    env = await archived(sim, tmp_path)
    out = tmp_path / "out.zip"
    for args, code, message in BAD_EXPORTS:
        r = await run_cli("export", *args, "-o", str(out), env=env, cwd=tmp_path)
        assert r.code == code, (args, r.out, r.err)
        assert message in r.err, args
        assert len(r.err.strip().splitlines()) == 1, r.err
        assert sorted(p.name for p in tmp_path.iterdir() if "zip" in p.name) == []
    r = await run_cli(
        "export", "x", "-o", str(tmp_path / "no-such-dir" / "x.zip"), env=env, cwd=tmp_path
    )
    assert r.code == 2
    assert "usage error: -o: no such directory" in r.err


async def test_export_is_bounded_refuses_an_altered_recording_and_keeps_files(
    sim: Simulator, tmp_path: Path
) -> None:
    env = await archived(sim, tmp_path)
    out = tmp_path / "out.zip"
    limited = env | {"ARCHIVER_CONSOLE__EXPORT_LIMIT": "2"}
    r = await run_cli(
        "export", "--search", "--since", SINCE, "-o", str(out), env=limited, cwd=tmp_path
    )
    assert r.code == 2, r.err
    assert "more than ARCHIVER_CONSOLE__EXPORT_LIMIT (2)" in r.err
    small = env | {"ARCHIVER_CONSOLE__EXPORT_MAX_BYTES": "1000"}
    r = await run_cli("export", sim.calls[0].cdr_id, "-o", str(out), env=small, cwd=tmp_path)
    assert r.code == 2, r.err
    assert "ARCHIVER_CONSOLE__EXPORT_MAX_BYTES (1000)" in r.err
    assert not out.exists()

    out.write_text("mine")
    r = await run_cli("export", sim.calls[0].cdr_id, "-o", str(out), env=env, cwd=tmp_path)
    assert (r.code, out.read_text()) == (2, "mine"), r.err
    assert "already exists (--force replaces it)" in r.err
    out.unlink()

    # A recording altered in place: refused before anything is written, and audited.
    [recording] = [
        p for p in (tmp_path / "archive").rglob("*") if sim.calls[2].sip_call_id in p.name
    ]
    recording.chmod(0o600)
    data = bytearray(recording.read_bytes())
    data[-1] ^= 0xFF
    recording.write_bytes(bytes(data))
    r = await run_cli(
        "export", sim.calls[1].cdr_id, sim.calls[2].cdr_id, "-o", str(out), env=env, cwd=tmp_path
    )
    assert r.code == 5, (r.out, r.err)
    assert "refused: some recordings failed their check" in r.err
    assert not out.exists()
    assert ("export", "refused") in await audit(env, tmp_path)


async def test_export_from_a_versioned_bucket_reads_the_pinned_version_and_refuses_a_replaced_one(
    sim: Simulator,
    s3_settings: S3Settings,
    make_bucket: MakeBucket,
    seaweed: SeaweedServer,
    tmp_path: Path,
) -> None:
    bucket = await make_bucket()
    storage = s3_settings(bucket)
    async with admin_client(seaweed) as client:
        await client.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
        )
    env = archiver_env(tmp_path, sim=sim, tuning=QUICK, storage=s3_storage_env(storage, seaweed))
    r = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    call = sim.calls[0]
    r = await run_cli("search", "--format", "json", env=env, cwd=tmp_path)
    [line] = [x for x in json.loads(r.out) if x["cdr_id"] == call.cdr_id]
    assert line["version_id"]  # the line pins the version it wrote
    out = tmp_path / "one.zip"
    r = await run_cli("export", call.cdr_id, "-o", str(out), env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    [exported] = check_zip(out, 1)
    assert exported["sha256"] == line["sha256"]
    # Someone overwrites the recording: refused, as the console refuses it (get serves
    # the archived version with a warning; an export is a bundle of evidence).
    key = line["object_key"]  # S3 lines record the bucket key, prefix included
    async with admin_client(seaweed) as client:
        await client.put_object(Bucket=bucket, Key=key, Body=b"not the call")
    again = tmp_path / "again.zip"
    r = await run_cli("export", call.cdr_id, "-o", str(again), env=env, cwd=tmp_path)
    assert r.code == 5, (r.out, r.err)
    assert "still holds the archived bytes" in r.err
    assert not again.exists()
