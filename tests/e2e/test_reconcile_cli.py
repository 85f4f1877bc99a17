"""``archiver reconcile`` as an auditor runs it: the CLI, against the simulated provider.

The archive is written by an in-process backfill; the reconcile runs as a
subprocess on a machine with no state (unless a test gives it the builder's),
on SeaweedFS and on a local directory, for both providers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from archiver.commands.runtime import open_runtime
from archiver.models import Provider
from archiver.settings import StorageSettings
from archiver.simulator import Faults, Simulator
from archiver.simulator.calls import SimCall
from archiver.state.base import JobState
from archiver.storage import open_store
from tests.support.cli import Result, archiver_env, local_storage_env, run_cli, s3_storage_env
from tests.support.pipeline import backfill, make_settings, read_archive
from tests.support.web import serve

SINCE = "2021-02-17"
UNTIL = "2021-02-18"
DAY = "2021-02-17"


# Small pages and windows: a day is many requests, as a month is against a real provider.
TUNING = {
    "ARCHIVER_SOURCE__PAGE_SIZE": "5",
    "ARCHIVER_SOURCE__RATE_LIMIT": "0",
    "ARCHIVER_SOURCE__MAX_BACKOFF": "0.05",
    "ARCHIVER_SOURCE__MAX_ATTEMPTS": "2",
    "ARCHIVER_WINDOW": "3600",
    "ARCHIVER_CONCURRENCY": "4",
    "ARCHIVER_MANIFEST_INTERVAL": "0.2",
    "ARCHIVER_OPERATOR": "auditor-1",
}


def _env(
    sim: Simulator, state_dir: Path, *, kind: Provider, storage: dict[str, str], base: str = ""
) -> dict[str, str]:
    return archiver_env(
        state_dir,
        base=base or sim.base_url,
        sim=sim,
        kind=kind,
        storage=storage,
        tuning={**TUNING, "ARCHIVER_SOURCE__TIMEZONE": sim.config.timezone},
    )


@pytest.fixture(params=["local", "s3"])
async def target(request, tmp_path, make_bucket, s3_settings, s3_env):
    """(StorageSettings for checking, environment variables for the CLI)."""
    if request.param == "local":
        root = tmp_path / "archive"
        return StorageSettings(url=str(root)), local_storage_env(root)
    settings = s3_settings(await make_bucket())
    return settings, s3_storage_env(settings, s3_env)


def _lines(result: Result, kind: str) -> list[str]:
    return [line for line in result.out.splitlines() if line.split(" ", 1)[0] == kind]


def _sip_ids(lines: list[str]) -> set[str]:
    # The simulator's sip_call_id is the call's id under both providers (epacific
    # has no separate CDR id).
    prefix = "sip_call_id="
    return {p.removeprefix(prefix) for ln in lines for p in ln.split() if p.startswith(prefix)}


def _day_line(calls: list[SimCall], missing: int) -> str:
    recorded = sum(1 for c in calls if c.has_recording)
    return (
        f"cdrs={len(calls)} with_recording={recorded} archived={recorded - missing} "
        f"missing={missing}"
    )


async def _audit(storage: StorageSettings, action: str = "reconcile") -> list[dict]:
    async with open_store(storage) as store:
        keys = sorted([obj.key async for obj in store.list("_archiver/audit/")])
        records = [json.loads(b"".join([c async for c in store.read(k)])) for k in keys]
    return [r for r in records if r["action"] == action]


@pytest.mark.sim(seed=21, calls=16, max_size=60_000)
@pytest.mark.parametrize("kind", [Provider.CDR_V2, Provider.EPACIFIC])
async def test_complete_then_missing_then_fixed(kind, target, sim, tmp_path):
    storage, storage_env = target
    builder = tmp_path / "builder"
    builder.mkdir()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    state = fresh / "state.sqlite3"
    await backfill(make_settings(sim, sim.base_url, storage, str(builder / "s.db"), kind=kind), sim)
    env = _env(sim, fresh, kind=kind, storage=storage_env)

    async def reconcile(*extra: str) -> Result:
        return await run_cli(
            "reconcile", "--since", SINCE, "--until", UNTIL, *extra, env=env, cwd=fresh
        )

    # 1. The range fully archived: exit 0, the day's totals are the provider's.
    done = await reconcile()
    assert done.code == 0, done.out + done.err
    assert f"DAY               {DAY}  {_day_line(sim.calls, 0)}" in done.out
    assert "COMPLETE" in done.out.splitlines()[-1]
    assert not _lines(done, "MISSING")
    assert not state.exists(), "a reconcile without --fix wrote a state database"

    # 2. Four calls, three recorded, the archive never saw (their window was listed
    # before they appeared, so no backfill lists it again), and one archived
    # call the provider has since purged.
    late = [
        c for c in sim.add_calls(4, datetime(2021, 2, 17, 10, 30, tzinfo=sim.tz)) if c.has_recording
    ]
    assert len(late) == 3
    purged = sim.remove_calls([next(c for c in sim.calls if c.has_recording).cdr_id])[0]
    found = await reconcile("--format", "table")
    assert found.code == 5, found.out + found.err
    missing = _lines(found, "MISSING")
    assert _sip_ids(missing) == {c.sip_call_id for c in late}
    for call in late:
        line = next(ln for ln in missing if f"sip_call_id={call.sip_call_id}" in ln)
        assert call.started_at.isoformat() in line
        assert "cdr_id=" in line
    unknown = _lines(found, "UNKNOWN-AT-SOURCE")
    assert _sip_ids(unknown) == {purged.sip_call_id}
    assert "informational" in unknown[0]
    assert f"DAY               {DAY}  {_day_line(sim.calls, 3)}" in found.out
    assert found.out.splitlines()[-1].startswith("INCOMPLETE: 3 recording(s) missing")
    assert not state.exists()

    # The same findings as JSON and CSV.
    as_json = await reconcile("--format", "json")
    assert as_json.code == 5
    doc = json.loads(as_json.out)
    assert doc["complete"] is False
    assert doc["totals"]["missing"] == 3
    assert doc["totals"]["unknown_at_source"] == 1
    assert Counter(f["kind"] for f in doc["findings"]) == {
        "MISSING": 3,
        "UNKNOWN-AT-SOURCE": 1,
    }
    as_csv = await reconcile("--format", "csv")
    assert as_csv.code == 5
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert {r["sip_call_id"] for r in rows if r["record"] == "MISSING"} == {
        c.sip_call_id for c in late
    }
    day = next(r for r in rows if r["record"] == "DAY" and r["date"] == DAY)
    assert (day["cdrs"], day["missing"]) == (str(len(sim.calls)), "3")

    # 3. --fix archives them at once; the range is complete again.
    fixed = await reconcile("--fix")
    assert fixed.code == 0, fixed.out + fixed.err
    assert _sip_ids(_lines(fixed, "FIXED")) == {c.sip_call_id for c in late}
    assert not _lines(fixed, "MISSING")
    assert _sip_ids(_lines(fixed, "UNKNOWN-AT-SOURCE")) == {purged.sip_call_id}
    again = await reconcile()
    assert again.code == 0, again.out + again.err
    assert f"DAY               {DAY}  {_day_line(sim.calls, 0)}" in again.out

    contents = await read_archive(storage)
    ids = [line["sip_call_id"] for line in contents.lines]
    assert len(ids) == len(set(ids)), "a call is in the manifest twice"
    expected = {c.sip_call_id for c in sim.calls if c.has_recording} | {purged.sip_call_id}
    assert set(ids) == expected
    by_id = {line["sip_call_id"]: line for line in contents.lines}
    for call in late:
        assert by_id[call.sip_call_id]["sha256"] == call.sha256()

    # Every reconcile left an audit record with its totals.
    records = await _audit(storage)
    assert [r["result"] for r in records] == [
        "complete",
        "incomplete",
        "incomplete",
        "incomplete",
        "complete",
        "complete",
    ]
    assert records[0]["operator"] == "auditor-1"
    assert records[1]["details"]["missing"] == 3
    assert records[4]["details"]["fixed"] == 3
    assert records[4]["target"] == {
        "since": "2021-02-17T00:00:00+07:00",
        "until": "2021-02-18T00:00:00+07:00",
        "provider": kind.value,
        "fix": True,
    }


@pytest.mark.sim(seed=5, calls=6, recording_fraction=1.0, max_size=50_000)
async def test_failed_recordings_carry_the_state_reason_and_the_state_is_not_written(sim, tmp_path):
    """Recordings that failed permanently: FAILED with the state's reason; exit 5;
    the state database is read, never written (its bytes are unchanged)."""
    storage = StorageSettings(url=str(tmp_path / "archive"))
    state = tmp_path / "state.sqlite3"
    settings = make_settings(sim, sim.base_url, storage, str(state))
    _, counts = await backfill(settings, sim)
    assert counts["archived"] == 6
    # Three more calls whose recordings 404 (past the ready deadline for a 2021
    # call: given up at once), listed by a backfill of their own minute.
    start = datetime(2021, 2, 17, 10, 30, tzinfo=sim.tz)
    late = sim.add_calls(3, start)
    sim.set_faults(Faults(not_ready_fraction=1.0, not_ready_seconds=3600))
    async with open_runtime(settings) as rt:
        await rt.pipeline.backfill([(start, start + timedelta(minutes=1))])
        assert (await rt.state.reports.counts())[JobState.FAILED] == 3
    before = hashlib.sha256(state.read_bytes()).hexdigest()
    env = _env(sim, tmp_path, kind=Provider.CDR_V2, storage=local_storage_env(tmp_path / "archive"))
    result = await run_cli("reconcile", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert result.code == 5, result.out + result.err
    failed = _lines(result, "FAILED")
    assert _sip_ids(failed) == {c.sip_call_id for c in late}
    assert all("reason: never_available: " in line for line in failed)
    assert not _lines(result, "MISSING")
    assert f"{_day_line(sim.calls, 3)}" in result.out
    assert "3 of them failed permanently" in result.out.splitlines()[-1]
    assert hashlib.sha256(state.read_bytes()).hexdigest() == before


@pytest.mark.sim(seed=21, calls=8, max_size=50_000)
async def test_fix_that_cannot_fetch_reports_failed_and_exit_5(sim, tmp_path):
    """--fix is not a false "complete" either: recordings it cannot fetch end FAILED."""
    storage = StorageSettings(url=str(tmp_path / "archive"))
    await backfill(make_settings(sim, sim.base_url, storage, str(tmp_path / "b.db")), sim)
    late = [
        c for c in sim.add_calls(4, datetime(2021, 2, 17, 10, 30, tzinfo=sim.tz)) if c.has_recording
    ]
    # From now on every recording 404s; a 2021 call is past its ready deadline.
    sim.set_faults(Faults(not_ready_fraction=1.0, not_ready_seconds=3600))
    fresh = tmp_path / "fresh"
    env = _env(sim, fresh, kind=Provider.CDR_V2, storage=local_storage_env(tmp_path / "archive"))
    result = await run_cli(
        "reconcile", "--since", SINCE, "--until", UNTIL, "--fix", env=env, cwd=tmp_path
    )
    assert result.code == 5, result.out + result.err
    failed = _lines(result, "FAILED")
    assert _sip_ids(failed) == {c.sip_call_id for c in late}
    assert all("never_available" in line for line in failed)
    assert not _lines(result, "FIXED")
    assert result.out.splitlines()[-1].startswith(f"INCOMPLETE: {len(late)} recording(s)")
    records = await _audit(storage)
    assert [r["result"] for r in records] == ["incomplete"]
    assert records[0]["details"]["failed"] == len(late)


class FailingProxy:
    """In front of the simulator: the first ``ok`` API requests pass through, every
    later one answers 503 (a provider outage mid-listing)."""

    def __init__(self, upstream: str, ok: int) -> None:
        self.upstream = upstream
        self.ok = ok
        self.seen = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.seen += 1
        if self.seen > self.ok:
            return web.Response(status=503, text="upstream unavailable")
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding")
        }
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=await request.read(),
            ) as upstream,
        ):
            body = await upstream.read()
            kind = upstream.headers.get("Content-Type", "application/octet-stream")
            return web.Response(status=upstream.status, body=body, headers={"Content-Type": kind})


@pytest.mark.sim(seed=3, calls=30, max_size=40_000)
@pytest.mark.parametrize("kind", [Provider.CDR_V2, Provider.EPACIFIC])
async def test_provider_error_mid_listing_is_exit_1_never_complete(kind, sim, tmp_path):
    storage = StorageSettings(url=str(tmp_path / "archive"))
    settings = make_settings(sim, sim.base_url, storage, str(tmp_path / "b.db"), kind=kind)
    await backfill(settings, sim)
    proxy = FailingProxy(sim.base_url, ok=3)
    fresh = tmp_path / "fresh"
    async with serve({"/{tail:.*}": proxy.handle}) as front:
        env = _env(
            sim, fresh, kind=kind, storage=local_storage_env(tmp_path / "archive"), base=front.url
        )
        result = await run_cli(
            "reconcile", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path
        )
    assert proxy.seen > proxy.ok, "the listing never reached the outage"
    assert result.code == 1, result.out + result.err
    assert result.out == "", "a partial report was printed"
    # Retry warnings are log records; the failure itself is one line, the last.
    failures = [ln for ln in result.err.splitlines() if ln.startswith("archiver: ")]
    assert len(failures) == 1, result.err
    assert result.err.strip().splitlines()[-1] == failures[0]
    assert "503" in failures[0]
    assert "COMPLETE" not in result.err
    assert not (fresh / "state.sqlite3").exists()
    records = await _audit(storage)
    assert [r["result"] for r in records] == ["error"]
    assert records[0]["target"]["provider"] == kind.value
    assert "503" in records[0]["details"]["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2021-02-18", "--until", "2021-02-17"], "--until must be later"),
        (["--since", "yesterday-ish", "--until", "2021-02-17"], "yesterday-ish"),
        (["--until", "2021-02-17"], "--since"),
        (["--since", "2021-02-17", "--until", "2021-02-18", "--format", "xml"], "--format"),
    ],
)
async def test_bad_arguments_are_one_line_exit_2(args, message, tmp_path: Path):
    # Nothing listens on the source: a bad argument must fail before any request.
    env = archiver_env(tmp_path, base="http://127.0.0.1:9")
    result = await run_cli("reconcile", *args, env=env, cwd=tmp_path)
    assert result.code == 2, result.out + result.err
    assert len(result.err.strip().splitlines()) == 1
    assert message in result.err
    assert not (tmp_path / "archive").exists()
    assert not (tmp_path / "state.sqlite3").exists()


async def test_no_archive_is_exit_2_and_creates_nothing(tmp_path: Path):
    """Without --fix, an empty storage is most likely the wrong URL: say so, write
    nothing there (not even the audit record), never ask the provider."""
    env = archiver_env(tmp_path, base="http://127.0.0.1:9")
    result = await run_cli("reconcile", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert result.code == 2, result.out + result.err
    assert "no archive in" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "archive").exists()
    assert not (tmp_path / "state.sqlite3").exists()
