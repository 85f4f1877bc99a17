"""``verify --no-rehash`` on a storage without checksums (a local folder) finds every
recording UNPROVEN: the first LIST_UNPROVEN are listed, the rest counted, not kept (each
with its manifest line is about 4 KB: 20 GB at 5 million calls). The count is in the
verdict, the summary's "unproven", the exit code; a CLI run below the bound lists all."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.manifest.reader import list_manifests
from archiver.retrieval import verify_report
from archiver.retrieval.problems import ProblemKind
from archiver.retrieval.verify import verify_archive
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from tests.support.cli import cli_env, run_cli
from tests.support.pipeline import backfill, make_settings

CALLS = 9


async def _archive(tmp_path: Path) -> StorageSettings:
    sim = Simulator(SimConfig(seed=4, calls=CALLS, recording_fraction=1.0, min_size=1_000,
                              max_size=3_000))  # fmt: skip
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "s.sqlite3"))
        _, counts = await backfill(settings, sim)
    assert counts["failed"] == 0
    return storage


async def test_past_the_bound_unproven_objects_are_counted_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = await _archive(tmp_path)
    monkeypatch.setattr(verify_report, "LIST_UNPROVEN", 3)
    async with open_store(storage) as store:
        manifests = await list_manifests(store, None, None, None)  # type: ignore[arg-type]
        report = await verify_archive(store, manifests, rehash=False, concurrency=2)
    unproven = [p for p in report.problems if p.kind is ProblemKind.UNPROVEN]
    assert len(unproven) == 3
    assert report.unlisted == CALLS - 3
    assert not report.ok
    assert not report.proven
    summary = report.summary()
    assert f"{len(report.problems) + CALLS - 3} problem(s)" in summary
    assert f"unproven {CALLS}" in summary


async def test_below_the_bound_the_cli_lists_every_one_and_exits_5(tmp_path: Path) -> None:
    storage = await _archive(tmp_path)
    env = cli_env({"ARCHIVER_STORAGE__URL": storage.url})
    run = await run_cli("verify", "--no-rehash", env=env, cwd=tmp_path)
    assert run.code == 5, run.out + run.err
    lines = [line for line in run.out.splitlines() if line.startswith("UNPROVEN ")]
    assert len(lines) == CALLS
    assert "not listed" not in run.out


async def test_a_sample_counts_the_unlisted_as_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--sample`` with ``--no-rehash``: every sampled object is UNPROVEN, listed or not; the
    sample's count of bad objects says so (not only the listed ones)."""
    from archiver.retrieval.sampling import Sample

    storage = await _archive(tmp_path)
    monkeypatch.setattr(verify_report, "LIST_UNPROVEN", 2)
    sample = Sample.parse("100%", "seed")
    async with open_store(storage) as store:
        manifests = await list_manifests(store, None, None, None)  # type: ignore[arg-type]
        report = await verify_archive(store, manifests, rehash=False, sample=sample)
    assert report.checked == CALLS
    assert report.unlisted == CALLS - 2
    assert report.sampled_bad(sample) == CALLS
