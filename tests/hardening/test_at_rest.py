"""Secrets and calls at rest: what stays on disk after a run, and who may read it.

The state database keeps a signed recording URL only while its job needs it, and
never a CDR's raw payload; files are 0600 and folders 0700 whatever the umask
(or the configured mode); a symlink planted in a local archive is never followed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from archiver.errors import StorageError
from archiver.failures import FailureKind
from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord, Direction, Provider
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.state import SqliteState
from archiver.state.records import record_json
from archiver.state.sqlite.migrations import MIGRATIONS, migrate
from archiver.storage import open_store
from tests.support.pipeline import backfill, make_settings

T0 = datetime(2021, 2, 17, 3, 0, tzinfo=UTC)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common umask 022, under which files are world-readable unless made private."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _call(cdr_id: str, secret: str) -> CallRecord:
    url = f"https://user-{secret}:pw-{secret}@rec.example/{cdr_id}.mp3?X-Sig=sig-{secret}"
    return CallRecord(
        provider=Provider.CDR_V2,
        cdr_id=cdr_id,
        sip_call_id=f"sip-{cdr_id}",
        started_at=T0,
        direction=Direction.INBOUND,
        recording_url=url,
        raw={"id": cdr_id, "api_secret": f"raw-{secret}", "recording_url": url},
    )


def _info(n: int) -> ManifestEntry:
    return ManifestEntry.from_line(
        {
            "sip_call_id": f"s{n}",
            "cdr_id": f"c{n}",
            "provider": "cdr_v2",
            "object_key": f"recordings/{n}.mp3",
            "sha256": f"{n:064x}",
            "size": 10,
            "content_type": "audio/mpeg",
            "archived_at": T0.isoformat(),
            "n": n,
        }
    )


def _bytes_on_disk(db: Path) -> bytes:
    """The database file and whatever SQLite keeps beside it."""
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


async def test_no_signed_url_or_raw_payload_stays_in_the_state_file(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    async with await SqliteState.open(db) as store:
        await store.jobs.add_calls([_call(c, c.upper()) for c in ("done", "gone", "wait")], T0)
        jobs = {job.call.cdr_id: job for job in await store.jobs.claim_due(T0, 10)}
        await store.outcomes.mark_archived(jobs["done"].id, _info(1), "2021-02-17")
        await store.outcomes.mark_failed(
            jobs["gone"].id,
            "HTTP 403 from https://rec.example/gone.mp3",
            kind=FailureKind.HTTP_ERROR,
        )
        await store.outcomes.mark_retry(
            jobs["wait"].id, jobs["wait"].state.PENDING, "HTTP 503", T0 + timedelta(minutes=1)
        )
        # A pending job still has the URL it needs.
        [waiting] = await store.jobs.claim_due(T0 + timedelta(hours=1), 10)
        assert waiting.call.recording_url == _call("wait", "WAIT").recording_url
    on_disk = _bytes_on_disk(db)
    for ended in ("DONE", "GONE"):
        for secret in (f"sig-{ended}", f"pw-{ended}", f"user-{ended}", f"raw-{ended}"):
            assert secret.encode() not in on_disk, secret
    # The raw payload is never kept, even for the job still in progress.
    assert b"raw-WAIT" not in on_disk


async def test_an_old_database_is_scrubbed_on_upgrade(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    old = _call("old", "OLD")
    conn = await aiosqlite.connect(db, isolation_level=None)
    await migrate(conn, MIGRATIONS[:1])
    # The first release's row: the whole call, raw payload and URL included.
    import json

    from archiver.models import call_to_dict

    record = json.dumps(call_to_dict(old))
    await conn.execute(
        "INSERT INTO calls (provider, cdr_id, sip_call_id, started_at, record_json,"
        " recording_url, state, next_attempt_at, first_seen_at, updated_at)"
        " VALUES ('cdr_v2', 'old', 'sip-old', ?1, ?2, ?3, 'archived', ?1, ?1, ?1)",
        ("2021-02-17T03:00:00.000000Z", record, old.recording_url),
    )
    await conn.close()
    assert b"raw-OLD" in db.read_bytes()
    async with await SqliteState.open(db) as store:
        found = await store.reports.find_job("old")
        assert found is not None
    on_disk = _bytes_on_disk(db)
    for secret in ("sig-OLD", "pw-OLD", "raw-OLD"):
        assert secret.encode() not in on_disk, secret


def test_the_stored_record_has_neither_url_nor_payload() -> None:
    text = record_json(_call("a", "A"))
    assert "A" not in text.replace("INBOUND", "").replace("inbound", "")


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]
    }


async def test_a_backfill_leaves_private_files_and_no_signed_url(
    tmp_path: Path, loose_umask: None
) -> None:
    sim = Simulator(SimConfig(seed=3, calls=6, recording_fraction=1.0, max_size=40_000))
    archive = tmp_path / "archive"
    state = tmp_path / "state" / "db.sqlite3"
    async with sim.serve() as base:
        settings = make_settings(sim, base, StorageSettings(url=str(archive)), str(state))
        _, counts = await backfill(settings, sim)
    assert counts["archived"] == 6
    # The simulator's signed links carry ?expires=...&signature=...: none is left.
    assert any(c.url_kind == "signed" for c in sim.calls)
    assert b"signature=" not in _bytes_on_disk(state)
    archive_modes = _modes(archive)
    assert any(name.startswith("recordings/") for name in archive_modes)
    assert any(name.startswith("manifests/") for name in archive_modes)
    for name, mode in archive_modes.items():
        expected = 0o700 if (archive / name).is_dir() else 0o600
        assert mode == expected, f"{name}: {oct(mode)}"
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    # The -wal and -shm files exist while the database is open: they follow its mode.
    async with await SqliteState.open(state) as store:
        await store.jobs.add_calls([_call("x", "X")], T0)
        beside = _modes(state.parent)
        assert {"db.sqlite3-wal", "db.sqlite3-shm"} <= set(beside)
        assert {n: m for n, m in beside.items() if n != "."} == dict.fromkeys(
            ("db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"), 0o600
        )


async def test_a_configured_mode_is_used(tmp_path: Path, loose_umask: None) -> None:
    root = tmp_path / "shared"
    settings = StorageSettings(url=str(root), file_mode="0640")
    async with open_store(settings) as store:
        await store.put_bytes("a/b/c.txt", b"x", sha256=_sha(b"x"), content_type="text/plain")
    assert _modes(root) == {".": 0o750, "a": 0o750, "a/b": 0o750, "a/b/c.txt": 0o640}


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


async def test_a_planted_folder_symlink_is_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    outside = tmp_path / "outside"
    (root / "recordings").mkdir(parents=True)
    outside.mkdir()
    (root / "recordings" / "2021").symlink_to(outside, target_is_directory=True)
    async with open_store(StorageSettings(url=str(root))) as store:
        with pytest.raises(StorageError, match="symbolic link"):
            await store.put_bytes(
                "recordings/2021/02/x.wav", b"x", sha256=_sha(b"x"), content_type="audio/wav"
            )
        with pytest.raises(StorageError, match="symbolic link"):
            await store.start_upload("recordings/2021/y.wav", content_type="audio/wav")
        listed = [obj.key async for obj in store.list("recordings/")]
    assert list(outside.rglob("*")) == []
    assert listed == []


async def test_a_symlink_to_dev_zero_at_a_final_name_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    (root / "recordings").mkdir(parents=True)
    (root / "recordings" / "x.wav").symlink_to("/dev/zero")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"x")
    (root / "recordings" / "y.wav").symlink_to(secret)
    async with open_store(StorageSettings(url=str(root))) as store:
        from archiver.storage import ObjectExistsError

        # Before: os.link met the name, and hashing it read /dev/zero for ever.
        with pytest.raises(ObjectExistsError):
            await store.put_bytes(
                "recordings/x.wav", b"x", sha256=_sha(b"x"), content_type="audio/wav"
            )
        # A link to a file with the very bytes is still not "already present".
        with pytest.raises(ObjectExistsError):
            await store.put_bytes(
                "recordings/y.wav", b"x", sha256=_sha(b"x"), content_type="audio/wav"
            )
        assert await store.head("recordings/x.wav") is None
        with pytest.raises(KeyError):
            async for _ in store.read("recordings/y.wav"):
                pass
