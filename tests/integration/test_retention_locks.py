"""Object Lock dates set at write time from the retention schedule, on SeaweedFS.

A backfill into an Object Lock bucket with a schedule of two rules: each
recording's retain-until is its call's start plus its rule's days, or a day
after writing where that end is already past (calls of 2021 under a one-year
rule); manifests and the chain keep the default span.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from archiver.settings import RetentionSettings, SourceSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from tests.support.pipeline import backfill, make_settings

RULES = """
[[rule]]
name = "outbound-century"
days = 36500
direction = "outbound"

[[rule]]
name = "one-year"
days = 365
"""


async def test_each_recording_is_locked_until_its_rules_end(
    tmp_path, make_bucket, s3_settings, s3_env
):
    sim = Simulator(SimConfig(seed=11, calls=8, recording_fraction=1.0, max_size=40_000))
    storage = s3_settings(
        await make_bucket(object_lock=True), object_lock_mode="GOVERNANCE", retention_days=7
    )
    (tmp_path / "rules.toml").write_text(RULES)
    before = datetime.now(UTC)
    async with sim.serve() as base:
        settings = make_settings(
            sim,
            base,
            storage,
            str(tmp_path / "state.sqlite3"),
            retention=RetentionSettings(rules_file=tmp_path / "rules.toml"),
        )
        codes = {"source": {"direction_codes": "1=inbound,2=outbound,3=local"}}
        source = settings.source.model_dump() | codes["source"]
        settings = settings.model_copy(update={"source": SourceSettings.model_validate(source)})
        await backfill(settings, sim)
    after = datetime.now(UTC)
    by_call = {c.sip_call_id: c for c in sim.calls}
    async with open_store(storage) as store:
        recordings = [o.key async for o in store.list("recordings/")]
        manifests = [o.key async for o in store.list("manifests/")]
        assert len(recordings) == len(sim.calls)
        for key in recordings:
            call = by_call[key.rsplit("/", 1)[1].rsplit(".", 1)[0]]
            lock = await store.protection(key)
            assert lock is not None
            assert lock.mode == "GOVERNANCE"
            if call.direction == "outbound":
                expected = call.started_at + timedelta(days=36500)
                assert abs(lock.retain_until - expected) < timedelta(seconds=1), key
            else:  # one year from 2021 is past: a day after writing
                assert before + timedelta(days=1) - timedelta(seconds=1) <= lock.retain_until
                assert lock.retain_until <= after + timedelta(days=1) + timedelta(seconds=1)
        manifest = await store.protection(manifests[0])
        assert manifest is not None
        assert manifest.retain_until >= before + timedelta(days=7) - timedelta(seconds=1)
