"""``archiver dispose`` when some deletions really fail: SeaweedFS (Object Lock and
versioning) behind the fault proxy, which answers 403 AccessDenied to every DELETE of two
chosen recordings (as a bucket policy would), the rest forwarded untouched (issue 27).

Exit 3; the two are named as failed with the storage's reason; the others are disposed
of under tombstones; the certificate names only what was deleted; ``verify`` afterwards
counts DISPOSED only the deleted ones and proves the two failed ones still intact; ``get``
still serves them. Their tombstones were written before the deletion (so that a crash
never leaves a deletion without its record): they stay *pending*, counted as disposed
nowhere, and the next run, the fault gone, deletes them and exits 0.
"""

from __future__ import annotations

import json

from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from tests.support.cli import cli_env, run_cli, s3_storage_env
from tests.support.faultproxy import FaultProxy
from tests.support.pipeline import backfill, make_settings
from tests.support.s3faults import ProxyFaults, S3Request


def _keys(out: str, verb: str) -> set[str]:
    return {line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith(verb)}


async def _tombstoned(storage: StorageSettings) -> set[str]:
    async with open_store(storage) as store:
        keys = [o.key async for o in store.list("_archiver/tombstones/")]
        blobs = [b"".join([c async for c in store.read(k)]) for k in keys]
    return {json.loads(line)["object_key"] for b in blobs for line in b.splitlines()}


async def test_failed_deletions_exit_3_named_and_stay_intact(
    tmp_path, make_bucket, s3_settings, seaweed
):
    sim = Simulator(SimConfig(seed=11, calls=6, recording_fraction=1.0, max_size=40_000))
    storage = s3_settings(await make_bucket(object_lock=True))
    (tmp_path / "builder").mkdir()
    async with sim.serve() as base:
        await backfill(make_settings(sim, base, storage, str(tmp_path / "builder" / "s")), sim)
    prefix = storage.bucket_and_prefix[1]
    keys = sorted(
        f"{prefix}recordings/{c.started_at:%Y/%m/%d}/{c.sip_call_id}.{c.fmt}" for c in sim.calls
    )
    failing = set(keys[:2])
    (tmp_path / "rules.toml").write_text("default_days = 1\n")  # every call (2021) is due
    env = {
        "ARCHIVER_STATE__URL": str(tmp_path / "state.sqlite3"),
        "ARCHIVER_RETENTION__RULES_FILE": str(tmp_path / "rules.toml"),
        "ARCHIVER_OPERATOR": "records-1",
    }

    def refused(request: S3Request) -> bool:
        return request.method == "DELETE" and request.key in failing

    proxy = FaultProxy(seaweed.endpoint_url, ProxyFaults(denied=1.0, only=refused))
    async with proxy.serve() as endpoint:
        faulty = cli_env(env | s3_storage_env(storage, seaweed, endpoint))
        done = await run_cli("dispose", "--approved-by", "Officer A", env=faulty, cwd=tmp_path)
    assert proxy.stats["fault:denied:DeleteObject"] >= 2, done.out + done.err
    assert done.code == 3, done.out + done.err
    assert _keys(done.out, "failed: ") == failing
    for line in done.out.splitlines():
        if line.startswith("failed: "):
            assert "cannot delete version" in line, line
            assert "access denied" in line, line
            assert line.endswith("(still stored; the next run deletes it)"), line
    assert _keys(done.out, "disposed: ") == set(keys) - failing
    assert "disposed of 4 recording(s)" in done.out
    assert "failed 2" in done.out

    clean = cli_env(env | s3_storage_env(storage, seaweed))
    async with open_store(storage) as store:
        audit = [o.key async for o in store.list("_archiver/audit/")]
        records = [json.loads(b"".join([c async for c in store.read(k)])) for k in audit]
    [record] = [r for r in records if r["action"] == "dispose"]
    assert record["result"] == "failed"
    assert {d["object_key"] for d in record["details"]["disposed"]} == set(keys) - failing
    assert {f["object_key"] for f in record["details"]["failed"]} == failing
    # Tombstone first, deletion second: the failed ones' tombstones are pending.
    assert await _tombstoned(storage) == set(keys)

    verified = await run_cli("verify", env=clean, cwd=tmp_path)
    assert verified.code == 0, verified.out + verified.err
    assert "DISPOSED 4 recording(s)" in verified.out
    assert "verified 2 object(s)" in verified.out
    still = next(c for c in sim.calls if c.sip_call_id in next(iter(failing)))
    got = await run_cli("get", still.cdr_id, "-o", str(tmp_path / "kept"), env=clean, cwd=tmp_path)
    assert got.code == 0, got.err
    assert len((tmp_path / "kept").read_bytes()) == still.size

    # The fault gone, the next run finishes the pending two.
    again = await run_cli("dispose", "--approved-by", "Officer A", env=clean, cwd=tmp_path)
    assert again.code == 0, again.out + again.err
    assert _keys(again.out, "disposed: ") == failing
    final = await run_cli("verify", env=clean, cwd=tmp_path)
    assert final.code == 0, final.out + final.err
    assert "DISPOSED 6 recording(s)" in final.out
