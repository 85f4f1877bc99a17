"""Processes moving one writer's chain head at once (a ``run`` and a ``backfill`` on one
state, replicas around a change of leader): the head is replaced only if it is still
what its writer read, so it never falls behind nor moves back. On a directory and on
SeaweedFS.

The race is made deterministic by a real store that holds a writer between its read
of the head and its write, while the other writer moves the head.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver.errors import StorageError
from archiver.manifest.chain import Head, next_link, sha256_hex
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.writer import advance_head, flush_manifest, read_head
from archiver.models import CallRecord, Provider
from archiver.settings import StorageSettings
from archiver.state.sqlite import SqliteState
from archiver.storage import ObjectStore, open_store
from archiver.storage.layout import HEAD_NAME, head_key
from tests.support.cli import cli_env, local_storage_env, run_cli, s3_storage_env

WRITER = "w0123456789ab"
STARTED = datetime(2021, 2, 17, 1, 0, tzinfo=UTC)


@pytest.fixture(params=["local", "s3"])
async def storage(request, tmp_path, make_bucket, s3_settings, seaweed) -> dict[str, Any]:
    """The settings, and the CLI's variables for them."""
    if request.param == "local":
        root = tmp_path / "archive"
        return {"settings": StorageSettings(url=str(root)), "env": local_storage_env(root)}
    settings = s3_settings(await make_bucket())
    return {"settings": settings, "env": s3_storage_env(settings, seaweed)}


class HeldAfterHeadRead:
    """A real store whose first read of a chain head waits for ``resume`` once done.

    Both the tagged read and a plain read are held, so the same test shows the
    race on a writer that reads the head either way.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self.held = asyncio.Event()
        self.resume = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def _hold(self, key: str) -> None:
        if key.endswith("/" + HEAD_NAME) and not self.held.is_set():
            self.held.set()
            await self.resume.wait()

    async def read_tagged(self, key: str) -> Any:
        found = await self._store.read_tagged(key)
        await self._hold(key)
        return found

    async def read(self, key: str, *args: Any, **kwargs: Any) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._store.read(key, *args, **kwargs):
                yield chunk
        except KeyError:
            await self._hold(key)
            raise
        await self._hold(key)


def _links(count: int) -> list[bytes]:
    """The bytes of links 1..count of one writer's chain."""
    out: list[bytes] = []
    previous = None
    for seq in range(1, count + 1):
        key = f"manifests/date=2021-02-17/{seq:012d}-{WRITER}.jsonl"
        data = next_link(WRITER, seq, key, b"line\n", 1, previous).to_bytes()
        previous = (seq, sha256_hex(data))
        out.append(data)
    return out


async def test_replace_bytes_writes_only_over_the_content_its_caller_read(storage) -> None:
    key = head_key(WRITER)
    async with open_store(storage["settings"]) as store:
        assert await store.read_tagged(key) is None
        assert await store.replace_bytes(key, b"one", content_type="x", expected=None)
        # Someone else created it first: "absent" no longer holds.
        assert not await store.replace_bytes(key, b"uno", content_type="x", expected=None)
        first = await store.read_tagged(key)
        assert first is not None
        assert first.data == b"one"
        assert await store.replace_bytes(key, b"two", content_type="x", expected=first.tag)
        # The tag read before that write is stale now: nothing is written.
        assert not await store.replace_bytes(key, b"three", content_type="x", expected=first.tag)
        assert not await store.replace_bytes(key, b"four", content_type="x", expected="forged")
        second = await store.read_tagged(key)
        assert second is not None
        assert second.data == b"two"
        assert second.tag != first.tag
        # A local store's lock and temporary files are not objects.
        assert [obj.key async for obj in store.list("_archiver/")] == [key]


@pytest.mark.parametrize("ahead", [0, 5], ids=["first-head", "head-at-5"])
async def test_a_writer_held_between_read_and_write_does_not_move_the_head_back(
    storage, ahead: int
) -> None:
    links = _links(ahead + 2)
    behind, later = links[ahead], links[ahead + 1]
    async with open_store(storage["settings"]) as store:
        if ahead:
            await advance_head(store, links[ahead - 1])
        held = HeldAfterHeadRead(store)
        slow = asyncio.create_task(advance_head(held, behind))  # type: ignore[arg-type]
        await held.held.wait()
        # Meanwhile another process moves the head past the held writer's link.
        assert await advance_head(store, later) == Head.of(later)
        held.resume.set()
        assert await slow is None
        assert await read_head(store, WRITER) == Head.of(later)


_STRESS = """
import asyncio, sys
from pathlib import Path
from archiver.manifest.writer import advance_head, read_head
from archiver.storage.local import LocalStore
from tests.integration.test_chain_head_race import WRITER, _links

async def main(root, parity, count):
    store = LocalStore(root)
    # Both processes start writing together, once both have imported everything.
    Path(root + f".ready{parity}").touch()
    while not Path(root + f".ready{1 - parity}").exists():
        await asyncio.sleep(0.001)
    for seq, data in enumerate(_links(count), start=1):
        if seq % 2 == parity:
            await advance_head(store, data)
            head = await read_head(store, WRITER)
            if head is None or head.seq < seq:  # moved back by the other process
                sys.exit(f"head at {head and head.seq} after link {seq}")

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def test_two_processes_moving_a_local_head_end_at_the_last_link(tmp_path: Path) -> None:
    """One process writes the odd links' heads, another the even ones, at once, each
    checking after each write that the head is not below its link: the lock file
    makes each compare-and-rename whole, so the head only moves forward."""
    root = tmp_path / "archive"
    count = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _STRESS, str(root), str(parity), str(count)],
            cwd=Path(__file__).parents[2],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )
        for parity in (0, 1)
    ]
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    async with open_store(StorageSettings(url=str(root))) as store:
        head = await read_head(store, WRITER)
    assert head == Head.of(_links(count)[-1])


async def test_a_symlink_planted_at_the_head_or_its_folder_writes_nothing_outside(
    tmp_path: Path,
) -> None:
    root = tmp_path / "archive"
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    links = _links(2)
    async with open_store(StorageSettings(url=str(root))) as store:
        await advance_head(store, links[0])
        head = root / head_key(WRITER)
        head.unlink()
        head.symlink_to(outside)
        # The head is replaced, the link itself (never what it points to).
        assert await advance_head(store, links[1]) == Head.of(links[1])
        assert not head.is_symlink()
        # The head's folder is the lock: nothing but the head and its links is left there.
        assert [p.name for p in head.parent.iterdir()] == [HEAD_NAME]
        # A folder of the head planted as a symlink is refused, never written through.
        moved = tmp_path / "moved"
        head.parent.rename(moved)
        head.parent.symlink_to(moved)
        with pytest.raises((StorageError, ValueError)):
            await advance_head(store, _links(3)[2])
    assert outside.read_bytes() == b"keep"
    assert (moved / HEAD_NAME).read_bytes() == Head.of(links[1]).to_bytes()


async def _archive(state: SqliteState, store: ObjectStore, numbers: range) -> None:
    """Store one recording per number and mark its call archived in ``state``."""
    calls = [
        CallRecord(
            provider=Provider.CDR_V2,
            cdr_id=f"c{n}",
            sip_call_id=f"s{n}",
            started_at=STARTED + timedelta(minutes=n),
            recording_url=f"http://127.0.0.1:9/rec/{n}.wav",
        )
        for n in numbers
    ]
    await state.jobs.add_calls(calls, STARTED)
    jobs = await state.jobs.claim_due(STARTED + timedelta(days=1), len(calls), owner="test")
    for job in jobs:
        call = job.call
        data = b"RIFF" + call.sip_call_id.encode() * 50
        digest = hashlib.sha256(data).hexdigest()
        key = f"recordings/{call.sip_call_id}.wav"
        written = await store.put_bytes(key, data, sha256=digest, content_type="audio/wav")
        entry = ManifestEntry.build(
            call,
            object_key=store.full_key(key),
            sha256=digest,
            size=len(data),
            content_type="audio/wav",
            archived_at=STARTED,
            proof=written.proof,
        )
        await state.outcomes.mark_archived(job.id, entry, "2021-02-17")


async def test_a_run_and_a_backfill_flushing_one_state_leave_a_chain_verify_proves(
    storage, tmp_path: Path
) -> None:
    """The run holds between reading the head and writing it while the backfill, on the
    same SQLite state, writes the run's batch and one of its own: the run must not then
    put the head back on its own link (verify: link 5 past the head, UNPROVEN)."""
    db = tmp_path / "state.sqlite3"
    async with (
        await SqliteState.open(db) as run_state,
        await SqliteState.open(db) as backfill_state,
        open_store(storage["settings"]) as store,
    ):
        await _archive(run_state, store, range(3))
        await flush_manifest(run_state.batches, store, max_lines=1)
        await _archive(run_state, store, range(3, 4))
        held = HeldAfterHeadRead(store)
        run = asyncio.create_task(flush_manifest(run_state.batches, held, max_lines=1))  # type: ignore[arg-type]
        await held.held.wait()
        await _archive(backfill_state, store, range(4, 5))
        await flush_manifest(backfill_state.batches, store, max_lines=1)
        held.resume.set()
        await run
    env = cli_env({"ARCHIVER_STATE__URL": str(db), **storage["env"]})
    result = await run_cli("verify", env=env, cwd=tmp_path)
    assert "UNPROVEN" not in result.out
    assert result.code == 0, result.out + result.err
