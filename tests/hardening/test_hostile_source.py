"""The hostile source: every provider fault at once, and nothing bad ever reaches the storage.

``archiver backfill`` (the CLI, as a subprocess) runs against the simulated
provider with all its faults switched on, and is run again until it exits 0.
Meanwhile a watcher lists the storage again and again: every object it ever
sees must be a recording with exactly the simulator's bytes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from archiver.models import Provider
from archiver.simulator import Faults, SimConfig, Simulator
from tests.hardening.conftest import Target
from tests.hardening.watcher import Watcher, expected_objects
from tests.support.cli import QUICK, archiver_env, run_cli
from tests.support.pipeline import (
    FIXED_START,
    LONG_READY_DEADLINE,
    assert_exactly_once,
)

# The mix: ~5% 5xx, 3% 429, 2% resets, 2% truncated, 2% HTML with 200,
# 10% recordings 404 until ready, signed URLs living a second or two, slow answers.
HOSTILE = Faults(
    api_5xx=0.05,
    api_429=0.03,
    retry_after=1,
    slow=0.05,
    slow_seconds=0.4,
    rec_5xx=0.05,
    rec_reset=0.02,
    rec_truncated=0.02,
    rec_html=0.02,
    not_ready_fraction=0.10,
    not_ready_seconds=1.0,
    signed_ttl=1.0,
)
MAX_RUNS = 6


# Small pages and quick retries under a hostile mix: many runs, each short.
TUNING = {
    **QUICK,
    "ARCHIVER_SOURCE__PAGE_SIZE": "4",
    "ARCHIVER_SOURCE__MAX_ATTEMPTS": "20",
    "ARCHIVER_CONCURRENCY": "6",
    "ARCHIVER_WINDOW": "1800",
    "ARCHIVER_MANIFEST_BATCH": "10",
    "ARCHIVER_BACKFILL_MAX_WAIT": "30",
    "ARCHIVER_RETRY__MAXIMUM": "0.3",
    "ARCHIVER_RETRY__NOT_READY_INITIAL": "0.2",
    "ARCHIVER_RETRY__NOT_READY_MAXIMUM": "0.5",
    "ARCHIVER_RETRY__READY_DEADLINE": str(int(LONG_READY_DEADLINE)),
    # Most recordings go up as multipart uploads: that path is under test too.
    "ARCHIVER_STORAGE__BUFFER_BOUND": "65536",
}


# A fixed day (FIXED_START), so that the API requests (which name their dates) and
# with them the simulator's fault draws are the same on every run: the run is
# reproducible, and the check that every fault was drawn cannot pass one day and
# fail the next. The deadline for late recordings reaches back to it, so a
# recording that 404s is "not ready yet", not gone for good.


def fixed_sim(seed: int, calls: int, faults: Faults) -> Simulator:
    start = FIXED_START
    return Simulator(
        SimConfig(
            seed=seed,
            calls=calls,
            start=start,
            span=timedelta(hours=2),
            min_size=20_000,
            max_size=300_000,
            faults=faults,
        )
    )


def _range(sim: Simulator) -> tuple[str, str]:
    start = sim.config.start
    return start.isoformat(), (start + sim.config.span).isoformat()


@pytest.mark.slow
# cdr_v2 on both storages; epacific on the local store only (time budget): the
# combination is not generated rather than skipped.
@pytest.mark.parametrize(
    ("kind", "target"),
    [(Provider.CDR_V2, "local"), (Provider.CDR_V2, "s3"), (Provider.EPACIFIC, "local")],
    indirect=["target"],
)
async def test_all_source_faults_at_once_nothing_bad_ever_stored(
    target: Target, tmp_path: Path, kind: Provider
) -> None:
    sim = fixed_sim(seed=71, calls=300, faults=HOSTILE)
    expected = expected_objects(sim.calls, sim.tz, kind)
    watcher = Watcher(target.lister, expected)
    stop = asyncio.Event()
    codes: list[int] = []
    async with sim.serve() as base:
        env = archiver_env(
            tmp_path, base=base, sim=sim, kind=kind, storage=target.env, tuning=TUNING
        )
        since, until = _range(sim)
        watching = asyncio.create_task(watcher.watch(stop))
        try:
            for _ in range(MAX_RUNS):
                r = await run_cli(
                    "backfill", "--since", since, "--until", until, env=env, cwd=tmp_path
                )
                codes.append(r.code)
                assert "Traceback" not in r.err, r.err
                if r.code == 0:
                    break
                assert r.code == 3, f"exit {r.code}: {r.out}{r.err}"
        finally:
            stop.set()
            await watching
    assert codes[-1] == 0, f"exit codes {codes}: never finished"
    watcher.assert_clean()
    await assert_exactly_once(sim, target.settings, kind)
    assert await target.lister.leftovers() == []
    injected = {k.removeprefix("fault:"): v for k, v in sim.stats.items() if k.startswith("fault:")}
    faults_seen = {name for name, n in injected.items() if n}
    wanted = {"api_5xx", "api_429", "slow", "rec_5xx", "rec_reset", "rec_truncated", "rec_html"}
    assert wanted <= faults_seen, f"faults never drawn: {wanted - faults_seen}"
    assert injected.get("not_ready", 0) > 0
    print(
        f"\nhostile source [{kind.value}/{target.kind}]: runs {codes}, faults {injected}, "
        f"expired signed links {sim.stats['signed_rejected']}, "
        f"watcher {watcher.scans} scans / {watcher.objects_checked} objects, "
        f"archived {len(expected)}, lost 0"
    )


async def test_the_watcher_catches_what_it_must(tmp_path: Path) -> None:
    """The watcher itself: an HTML page, a truncated recording, a stray object and a
    doubled manifest line are each reported; the right bytes are not."""
    from tests.hardening.watcher import LocalLister

    sim = Simulator(SimConfig(seed=9, calls=6, recording_fraction=1.0, max_size=50_000))
    expected = expected_objects(sim.calls, sim.tz)
    root = tmp_path / "archive"
    good, cut, html = list(expected.values())[:3]
    for exp, data in (
        (good, next(c for c in sim.calls if expected[c.sip_call_id] == good).content()),
        (cut, next(c for c in sim.calls if expected[c.sip_call_id] == cut).content()[:1000]),
        (html, b"<!DOCTYPE html><html>Recording unavailable</html>"),
    ):
        (root / exp.key).parent.mkdir(parents=True, exist_ok=True)
        (root / exp.key).write_bytes(data)
    (root / "recordings/stray.wav").write_bytes(b"RIFF")
    sip = next(iter(expected))
    line = f'{{"sip_call_id": "{sip}", "size": 1, "sha256": "x", "object_key": "k"}}\n'
    (root / "manifests").mkdir()
    (root / "manifests/a.jsonl").write_text(line)
    (root / "manifests/b.jsonl").write_text(line)
    watcher = Watcher(LocalLister(root), expected)
    await watcher.scan()
    report = "\n".join(watcher.violations)
    assert good.key not in report
    assert f"{cut.key}: 1000 bytes" in report
    assert f"{html.key}: " in report
    assert "DOCTYPE" in report
    assert "recordings/stray.wav: an object no recording should become" in report
    assert "wrong size or hash" in report
    assert "is in two manifest lines" in report
