"""The archive guard on a real SQLite state and a real local storage: a call line another
writer wrote after a job was archived, but before its batch is cut, is set aside rather than
written a second time; a call the archive holds is found by (provider, cdr id) only; the index
file held by another process is replaced by one in memory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from archiver.index_db import IndexDatabase
from archiver.manifest.chain import sha256_hex
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.writer import flush_manifest
from archiver.models import CallRecord, Provider
from archiver.pipeline.adoption import ArchiveGuard, open_index
from archiver.retrieval.local_index import SCHEMA
from archiver.settings import StorageSettings
from archiver.state.sqlite import SqliteState
from archiver.storage import open_store
from archiver.storage.layout import MANIFEST_CONTENT_TYPE, manifest_key
from archiver.storage.local import LocalStore

T0 = datetime(2021, 2, 17, 3, 0, tzinfo=UTC)
DAY = "2021-02-17"


def call(n: int, provider: Provider = Provider.CDR_V2) -> CallRecord:
    return CallRecord(
        provider=provider,
        cdr_id=f"cdr-{n}",
        sip_call_id=f"sip-{n}",
        started_at=T0,
        recording_url="https://rec.example/a.mp3",
        raw={},
    )


def line(n: int, provider: str = "cdr_v2", writer: str = "mine") -> ManifestEntry:
    return ManifestEntry.from_line(
        {
            "sip_call_id": f"sip-{n}",
            "cdr_id": f"cdr-{n}",
            "provider": provider,
            "object_key": f"recordings/{n}.mp3",
            "sha256": f"{n:064x}",
            "size": n,
            "content_type": "audio/mpeg",
            "call_started_at": T0.isoformat(),
            "archived_at": T0.isoformat(),
            "etag": None,
            "version_id": None,
            "checksum_sha256": None,
            "checksum_type": None,
            "writer": writer,
        }
    )


async def put_manifest(store: LocalStore, writer: str, entries: list[ManifestEntry]) -> str:
    key = manifest_key(DAY, 1, writer)
    content = "".join(e.to_line() + "\n" for e in entries).encode()
    await store.put_bytes(
        key, content, sha256=sha256_hex(content), content_type=MANIFEST_CONTENT_TYPE
    )
    return key


async def test_a_line_written_by_another_writer_before_the_cut_is_set_aside(
    tmp_path: Path,
) -> None:
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with open_store(storage) as store, await SqliteState.open(tmp_path / "s.db") as state:
        assert isinstance(store, LocalStore)
        guard = ArchiveGuard(
            store, state.outcomes, state.batches, IndexDatabase(tmp_path / "i.db", SCHEMA)
        )
        await guard.start((T0, T0.replace(hour=4)), UTC)
        await state.jobs.add_calls([call(n) for n in range(4)], T0)
        jobs = await state.jobs.claim_due(T0, 4, owner="me")
        for n, job in enumerate(jobs):
            assert await guard.known(job.call) is None
            await state.outcomes.mark_archived(job.id, line(n), DAY, owner="me")
        # Meanwhile another writer (a state whose marker lapsed) wrote two of these calls,
        # and a call of the same cdr id from another provider.
        theirs = await put_manifest(
            store, "wother", [line(1, writer="other"), line(3, writer="other"), line(2, "epacific")]
        )
        assert await guard.before_cut() == 2
        written = await flush_manifest(state.batches, store, 1000, on_written=guard.wrote)
        assert written == 2
        keys = [o.key async for o in store.list("manifests/")]
        mine = next(k for k in keys if k != theirs)
        ids = [json.loads(x)["cdr_id"] for x in (tmp_path / "archive" / mine).read_text().split()]
        assert ids == ["cdr-0", "cdr-2"]
        # The state keeps the other writer's line for the calls it set aside.
        found = await guard.known(call(3))
        assert found is not None
        assert found.fields["writer"] == "other"
        assert found.manifest_key == theirs
        # Its own manifest was indexed from its bytes: a refresh reads nothing.
        assert await guard.calls.refresh_days([T0.date()]) == 0
        assert await guard.known(call(0)) is not None
        guard.close()


async def test_an_index_file_held_by_another_process_falls_back_to_memory(
    tmp_path: Path,
) -> None:
    storage = StorageSettings(url=str(tmp_path / "archive"))
    path = tmp_path / "i.db"
    async with open_store(storage) as store, await SqliteState.open(tmp_path / "s.db") as state:
        assert isinstance(store, LocalStore)
        await put_manifest(store, "wother", [line(5, writer="other")])
        holder = IndexDatabase(path, SCHEMA)
        await holder.run(lambda c: c.execute("BEGIN EXCLUSIVE"))
        guard = ArchiveGuard(store, state.outcomes, state.batches, open_index(path))
        try:
            await guard.start((T0, T0.replace(hour=4)), UTC)
            found = await guard.known(call(5))
            assert found is not None
            assert found.fields["writer"] == "other"
        finally:
            await holder.run(lambda c: c.execute("ROLLBACK"))
            holder.close()
            guard.close()
