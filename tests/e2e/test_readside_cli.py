"""Issue 20's read side, as an auditor meets it: ``get`` and ``verify`` run as subprocesses on
an archive an insider has worked on (SeaweedFS and a local directory).

- a batch cut from the chain (its manifest object and link deleted, the head moved back):
  ``get`` of one of its calls exits 5 saying the line was cut, whether or not the local
  index knew the call, and ``verify`` names each recording left with no line (ORPHAN);
- a recording with no line stored a moment ago is not yet an orphan (the same cut, verified
  with the default margin);
- a forged line reusing a real call's cdr id never hides the real call (also when planted
  after the local index was built: named only once a full listing sees it);
- ``get --url`` with no version to pin warns that the URL serves whatever is stored;
- the local index is created 0600 in a 0700 folder, whatever the umask;
- a symlinked day folder is reported (exit 5), not a crash (exit 1);
- the orphan scan costs listing pages (counted at the wire), not a request per recording.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from archiver.manifest.chain import sha256_hex
from archiver.simulator import SimConfig, Simulator
from tests.e2e.readside_support import KINDS, Insider, several_batches
from tests.support.cli import cli_env, run_cli, s3_storage_env
from tests.support.faultproxy import FaultProxy
from tests.support.pipeline import backfill, make_settings

pytestmark = pytest.mark.slow
NOW = {"ARCHIVER_ORPHAN_MARGIN": "0"}
PROOF_FIELDS = (
    "etag",
    "version_id",
    "checksum_sha256",
    "checksum_type",
)  # a recording with no line is an orphan at once


@pytest.fixture(params=KINDS)
async def archive(request, tmp_path, make_bucket, s3_settings, seaweed) -> Insider:
    kind = request.param
    return await several_batches(kind, tmp_path, make_bucket, s3_settings, seaweed)


async def _cli(archive: Insider, tmp_path: Path, *args: str, **extra: str):
    return await run_cli(*args, env={**archive.env, **extra}, cwd=tmp_path)


async def test_get_of_a_cut_call_exits_5_and_verify_names_its_orphans(archive, tmp_path):
    lines = await archive.lines()
    kept = lines[0]
    # A machine that indexed the archive before the cut (its local index knows the call).
    warm = await _cli(archive, tmp_path, "get", kept["cdr_id"], "-o", str(tmp_path / "a.wav"))
    assert warm.code == 0, warm.err
    _, cut = await archive.truncate()
    assert cut
    assert kept["_manifest"] != cut[0]["_manifest"]
    victim = cut[0]

    known = await _cli(archive, tmp_path, "get", victim["sip_call_id"], "--url", **NOW)
    assert known.code == 5, (known.out, known.err)
    assert "cut" in known.err
    assert victim["_manifest"] in known.err

    cold_env = {"ARCHIVER_CONSOLE__INDEX_PATH": str(tmp_path / "cold.sqlite3")}
    cold = await _cli(archive, tmp_path, "get", victim["sip_call_id"], "--url", **NOW, **cold_env)
    assert cold.code == 5, (cold.out, cold.err)
    assert "cut" in cold.err
    assert victim["object_key"] in cold.err
    assert not list(tmp_path.glob("*.partial"))

    # With the default margin the recordings are too young to be called orphans.
    young = await _cli(archive, tmp_path, "get", victim["sip_call_id"], "--url", **cold_env)
    assert young.code == 4, (young.out, young.err)
    assert "not written yet" in young.err or "yet" in young.err

    # A recording stored a moment ago is not yet an orphan: its line may still come.
    young_verify = await _cli(archive, tmp_path, "verify")
    assert "ORPHAN" not in young_verify.out, young_verify.out
    assert f"{len(cut)} recording(s) with no line yet" in young_verify.out

    verify = await _cli(archive, tmp_path, "verify", **NOW)
    assert verify.code == 5, verify.out
    orphans = [row for row in verify.out.splitlines() if row.startswith("ORPHAN ")]
    keys = {archive.relative(str(line["object_key"])) for line in cut}
    assert {row.split()[1].rstrip(":") for row in orphans} == keys, verify.out

    # The archive's other calls are still served.
    other = await _cli(archive, tmp_path, "get", kept["cdr_id"], "-o", str(tmp_path / "b.wav"))
    assert other.code == 0, other.err


async def test_a_forged_line_reusing_a_cdr_id_never_hides_the_real_call(archive, tmp_path):
    real = (await archive.lines())[0]
    planted = b"RIFF-planted-recording"
    forged = {
        **{k: v for k, v in real.items() if k != "_manifest"},
        "sip_call_id": "forged-sip-id",
        "object_key": str(real["object_key"]).replace(real["sip_call_id"], "forged-sip-id"),
        "sha256": sha256_hex(planted),
        "size": len(planted),
        "etag": None,
        "checksum_sha256": None,
    }
    await archive.put(archive.relative(str(forged["object_key"])), planted)
    forged_key = "manifests/date=2021-02-17/000000000900-wforger00000001.jsonl"
    await archive.put(forged_key, (json.dumps(forged) + "\n").encode())
    # And one in the legacy format (no proof fields, a pre-chain name): no seal records it.
    legacy = {k: v for k, v in forged.items() if k not in PROOF_FIELDS}
    legacy_key = "manifests/date=2021-02-17/run-forged-legacy.jsonl"
    await archive.put(legacy_key, (json.dumps(legacy) + "\n").encode())

    out = tmp_path / "real.wav"
    got = await _cli(archive, tmp_path, "get", real["cdr_id"], "-o", str(out))
    assert got.code == 0, got.err
    assert sha256_hex(out.read_bytes()) == real["sha256"]
    assert forged_key in got.err
    assert legacy_key in got.err
    assert "outside the proven chain" in got.err

    # The forged line alone (by its own sip_call_id) is refused.
    alone = await _cli(archive, tmp_path, "get", "forged-sip-id", "-o", str(tmp_path / "f.wav"))
    assert alone.code == 5, (alone.out, alone.err)
    assert forged_key in alone.err
    assert not (tmp_path / "f.wav").exists()


def _forged_line(real: dict) -> tuple[bytes, dict]:
    planted = b"RIFF-planted-recording"
    return planted, {
        **{k: v for k, v in real.items() if k != "_manifest"},
        "sip_call_id": "forged-sip-id",
        "object_key": str(real["object_key"]).replace(real["sip_call_id"], "forged-sip-id"),
        "sha256": sha256_hex(planted),
        "size": len(planted),
        "etag": None,
        "checksum_sha256": None,
    }


# The S3 case beyond CI's time budget (the same index code; run with -m ondemand).
@pytest.mark.parametrize(
    "archive", ["local", pytest.param("s3", marks=pytest.mark.ondemand)], indirect=True
)
async def test_a_forged_line_planted_after_the_index_was_built_never_hides_the_real_call(
    archive, tmp_path
):
    # The warm index's contract (archiver.retrieval.index_refresh): a line planted beside
    # the chain since the index's last full listing is not named by a warm get of the real
    # call (the real call is still the only one served); verify reports it; a get of an id
    # only it holds lists everything again, refuses it, and from then on it is named.
    real = (await archive.lines())[0]
    warm = await _cli(archive, tmp_path, "get", real["cdr_id"], "--url")
    assert warm.code == 0, warm.err
    planted, forged = _forged_line(real)
    await archive.put(archive.relative(str(forged["object_key"])), planted)
    forged_key = "manifests/date=2021-02-17/000000000900-wforger00000001.jsonl"
    await archive.put(forged_key, (json.dumps(forged) + "\n").encode())

    out = tmp_path / "real.wav"
    got = await _cli(archive, tmp_path, "get", real["cdr_id"], "-o", str(out))
    assert got.code == 0, got.err
    assert sha256_hex(out.read_bytes()) == real["sha256"]
    assert forged_key not in got.err  # not listed yet: never served either

    verify = await _cli(archive, tmp_path, "verify")
    assert verify.code == 5, verify.out
    assert f"OUT-OF-CHAIN {forged_key}" in verify.out

    alone = await _cli(archive, tmp_path, "get", "forged-sip-id", "-o", str(tmp_path / "f.wav"))
    assert alone.code == 5, (alone.out, alone.err)
    assert forged_key in alone.err
    assert not (tmp_path / "f.wav").exists()

    named = await _cli(archive, tmp_path, "get", real["cdr_id"], "-o", str(tmp_path / "n.wav"))
    assert named.code == 0, named.err
    assert forged_key in named.err
    assert sha256_hex((tmp_path / "n.wav").read_bytes()) == real["sha256"]


@pytest.mark.parametrize("archive", ["s3"], indirect=True)
async def test_get_url_with_no_version_warns_it_serves_what_is_stored(archive, tmp_path):
    line = (await archive.lines())[0]
    got = await _cli(archive, tmp_path, "get", line["sip_call_id"], "--url")
    assert got.code == 0, got.err
    assert "serves whatever is stored" in got.err
    assert got.out.strip()


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("archive", ["local"], indirect=True)
async def test_the_local_index_is_private(archive, tmp_path, umask_022):
    line = (await archive.lines())[0]
    got = await _cli(archive, tmp_path, "get", line["cdr_id"], "-o", str(tmp_path / "x.wav"))
    assert got.code == 0, got.err
    index = Path(archive.env["ARCHIVER_CONSOLE__INDEX_PATH"])
    assert stat.S_IMODE(index.parent.stat().st_mode) == 0o700
    files = [p for p in index.parent.iterdir()]
    assert index in files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.parametrize("archive", ["local"], indirect=True)
async def test_a_symlinked_day_folder_is_reported_not_a_crash(archive, tmp_path):
    day = archive.path("recordings/2021/02/17")
    moved = tmp_path / "elsewhere"
    day.rename(moved)
    day.symlink_to(moved, target_is_directory=True)
    verify = await _cli(archive, tmp_path, "verify")
    assert verify.code == 5, (verify.out, verify.err)
    rows = [row for row in verify.out.splitlines() if row.startswith("SYMLINK recordings/")]
    assert len(rows) == len(await archive.lines())
    assert "is a symbolic link" in rows[0]
    line = (await archive.lines())[0]
    got = await _cli(archive, tmp_path, "get", line["cdr_id"], "-o", str(tmp_path / "y.wav"))
    assert got.code == 5, (got.out, got.err)
    assert "symbolic link" in got.err


async def test_the_orphan_scan_costs_listing_pages_not_a_request_per_recording(
    tmp_path, make_bucket, s3_settings, seaweed
):
    """verify stays at about one storage request per recording (its HEAD): the orphan scan
    adds one listing page per thousand recordings, no HEAD or GET."""

    sim = Simulator(
        SimConfig(seed=30, calls=150, recording_fraction=1.0, min_size=2_000, max_size=4_000)
    )
    storage = s3_settings(await make_bucket())
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"))
        _, counts = await backfill(settings, sim)
    archived = counts["archived"]
    proxy = FaultProxy(seaweed.endpoint_url)
    async with proxy.serve() as endpoint:
        env = {
            **s3_storage_env(storage, seaweed, endpoint),
            "ARCHIVER_STATE__URL": str(tmp_path / "fresh.sqlite3"),
        }
        verify = await run_cli("verify", env=cli_env(env), cwd=tmp_path)
    assert verify.code == 0, verify.out + verify.err
    assert f"orphans: {archived} recording(s) listed" in verify.out
    ops = {k: v for k, v in proxy.stats.items() if k.startswith("op:")}
    print(f"\nverify: {proxy.stats['requests']} requests for {archived} recordings: {ops}")
    assert ops.get("op:HeadObject", 0) <= archived + 5, ops  # one per recording
    assert proxy.stats["requests"] <= archived * 1.05 + 20, ops
