"""The fault scenarios of tests/faults/, each a function of the outage's length: the CI tests run
them short, the bench (tests/bench/faults.py) runs them 40 seconds long.

Storage faults act on SeaweedFS through the fault proxy (tests/support/faultproxy.py);
provider faults on the simulator's API through another (recordings are fetched
from the simulator directly); disk faults on a small tmpfs or a read-only bind
mount under the local storage (as root, file modes would not stop a write).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from archiver.settings import StorageSettings
from tests.support import fault_run as harness
from tests.support.cli import local_storage_env, s3_storage_env
from tests.support.fault_run import (
    FaultRun,
    Figures,
    fault_run,
    hold,
    make_sim,
    recover_and_check,
    verify_exactly_once,
)
from tests.support.faultproxy import FaultProxy, Kind
from tests.support.seaweed import SeaweedServer

# Recordings larger than the loopback socket buffers: a hung storage blocks the
# upload's write itself, where only a whole-request deadline can end it.
BIG = 9 * 1024 * 1024


async def _first_calls(run: FaultRun, storage: StorageSettings) -> None:
    await run.wait(run.ready, harness.SHOWS_WITHIN, "ready")
    await run.wait(
        lambda: run.all_archived(storage), harness.SHOWS_WITHIN, "the first calls archived"
    )


async def _metric_is(run: FaultRun, name: str, value: float) -> bool:
    return await run.metric(name) == value


async def storage_fault(
    kind: Kind,
    *,
    seaweed: SeaweedServer,
    bucket: str,
    tmp_path: Path,
    outage: float,
    size: int | None = None,
) -> Figures:
    """The storage refuses, resets or hangs for ``outage`` seconds while calls arrive."""
    figures = Figures(f"storage {kind}", outage)
    sim = make_sim(calls=2, size=size)
    url = f"s3://{bucket}/p"
    storage = StorageSettings(
        url=url,
        endpoint_url=seaweed.endpoint_url,
        addressing_style="path",
        region=seaweed.region,
    )
    proxy = FaultProxy(seaweed.endpoint_url, requests=False)
    async with proxy.serve() as endpoint, sim.serve() as base:
        env = s3_storage_env(StorageSettings(url=url), seaweed, endpoint=endpoint)
        async with fault_run(sim, base, tmp_path, env) as run:
            await _first_calls(run, storage)
            started = time.monotonic()
            await proxy.add_toxic("outage", kind)
            sim.add_calls(3)
            await run.wait(run.unready, harness.SHOWS_WITHIN, "unready while the storage is away")
            await run.wait(
                lambda: _metric_is(run, "archiver_storage_available", 0),
                harness.SHOWS_WITHIN,
                "archiver_storage_available 0",
            )
            await run.wait(
                _saw(run, r"past ARCHIVER_LAG_WARNING.*waiting for the storage"),
                harness.SHOWS_WITHIN,
                "the lag warning naming the storage",
            )
            if kind == "hang":
                figures.notes.append(f"{proxy.hung_connections()} connection(s) caught hung")
            await hold(started, outage)
            await proxy.remove_toxic("outage")
            await recover_and_check(run, storage, figures, time.monotonic())
            assert await run.metric("archiver_storage_available") == 1
            assert run.alive()
        await verify_exactly_once(run, storage, tmp_path)
    return figures


async def provider_fault(kind: Kind, *, tmp_path: Path, outage: float) -> Figures:
    """The provider's API refuses or hangs for ``outage`` seconds while calls arrive."""
    figures = Figures(f"provider {kind}", outage)
    sim = make_sim(calls=2)
    storage = StorageSettings(url=str(tmp_path / "archive"))
    async with sim.serve() as sim_base:
        proxy = FaultProxy(sim_base, requests=False)
        async with (
            proxy.serve() as base,
            fault_run(sim, base, tmp_path, local_storage_env(tmp_path / "archive")) as run,
        ):
            await _first_calls(run, storage)
            started = time.monotonic()
            await proxy.add_toxic("outage", kind)
            sim.add_calls(3)
            await run.wait(run.unready, harness.SHOWS_WITHIN, "unready while the provider is away")
            status, body = await run.get("/readyz")
            assert '"source": "not reached recently"' in body, body
            await hold(started, outage)
            await proxy.remove_toxic("outage")
            await recover_and_check(run, storage, figures, time.monotonic())
            assert run.alive()
        await verify_exactly_once(run, storage, tmp_path)
    return figures


def _saw(run: FaultRun, pattern: str):  # noqa: ANN202 - a predicate for FaultRun.wait
    async def seen() -> bool:
        return run.saw(pattern)

    return seen


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (root only), unmounted on the way out."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def resize(where: Path, size: str) -> None:
    """Give a tmpfs more (or less) room, in place."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


@contextlib.contextmanager
def bind_mount(source: Path, where: Path) -> Iterator[Path]:
    """``source`` bind-mounted at ``where`` (root only), unmounted on the way out."""
    source.mkdir(parents=True, exist_ok=True)
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(source), str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def read_only(where: Path, on: bool) -> None:
    """Remount a bind mount read-only (or read-write again)."""
    mode = "ro" if on else "rw"
    subprocess.run(["mount", "-o", f"remount,{mode},bind", str(where)], check=True)


def partial_files(root: Path) -> list[Path]:
    """Temporary files a write left behind under ``root``."""
    return [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".partial")]


async def disk_fault(kind: str, *, tmp_path: Path, outage: float) -> Figures:
    """The local storage's disk fills up (a 2 MiB tmpfs) or turns read-only (a
    bind mount remounted ro) while calls arrive; then space, or writes, return."""
    figures = Figures(f"local disk {kind}", outage)
    # 400 KB recordings: the first two fit in 2 MiB with more than 1 MiB to spare
    # (ready); of four more, three fit and the last does not.
    sim = make_sim(calls=2, size=400_000)
    root = tmp_path / "archive"
    storage = StorageSettings(url=str(root))
    with contextlib.ExitStack() as mounts:
        if kind == "full":
            mounts.enter_context(tmpfs(root, "2m"))
        else:
            mounts.enter_context(bind_mount(tmp_path / "archive-disk", root))
        async with (
            sim.serve() as base,
            fault_run(sim, base, tmp_path, local_storage_env(root)) as run,
        ):
            await _first_calls(run, storage)
            started = time.monotonic()
            if kind == "full":
                sim.add_calls(4)
            else:
                read_only(root, True)
                sim.add_calls(4)
            await run.wait(run.unready, harness.SHOWS_WITHIN, f"unready with the disk {kind}")
            await run.wait(
                lambda: _metric_is(run, "archiver_storage_available", 0),
                harness.SHOWS_WITHIN,
                "archiver_storage_available 0",
            )
            await run.wait(
                _saw(run, r"past ARCHIVER_LAG_WARNING.*waiting for the storage"),
                harness.SHOWS_WITHIN,
                "the lag warning naming the storage",
            )
            reason = "No space left on device" if kind == "full" else "Read-only file system"
            await run.wait(
                _saw(run, rf"storage unavailable.*cannot write recordings/.*{reason}"),
                harness.SHOWS_WITHIN,
                "a line naming the recording that could not be written",
            )
            assert partial_files(root) == [], "a failed write left a temporary file"
            await hold(started, outage)
            if kind == "full":
                resize(root, "64m")
            else:
                read_only(root, False)
            await recover_and_check(run, storage, figures, time.monotonic())
            assert run.alive()
        assert partial_files(root) == [], "a temporary file left behind"
        await verify_exactly_once(run, storage, tmp_path)
    return figures


async def state_disk_full(*, tmp_path: Path, outage: float) -> Figures:
    """The SQLite state's disk fills up (a 2 MiB tmpfs and a file filling it) while
    calls arrive; then the file is removed."""
    figures = Figures("state disk full", outage)
    sim = make_sim(calls=2, size=40_000)
    root = tmp_path / "archive"
    storage = StorageSettings(url=str(root))
    with tmpfs(tmp_path / "state-disk", "2m") as disk:
        filler = disk / "filler"
        async with (
            sim.serve() as base,
            fault_run(
                sim,
                base,
                tmp_path,
                local_storage_env(root),
                ARCHIVER_STATE__URL=str(disk / "state.sqlite3"),
            ) as run,
        ):
            await _first_calls(run, storage)
            started = time.monotonic()
            # Fill what is left of the disk: SQLite's next write finds no room.
            with contextlib.suppress(OSError), filler.open("wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            sim.add_calls(4)
            await run.wait(
                _saw(run, r"(?i)disk is full|No space left"),
                harness.SHOWS_WITHIN,
                "a line saying the state's disk is full",
            )
            await hold(started, outage)
            filler.unlink()
            await recover_and_check(run, storage, figures, time.monotonic())
            assert run.alive()
        await verify_exactly_once(run, storage, tmp_path)
    return figures
