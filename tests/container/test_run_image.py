"""``archiver run`` from the image, as docs/deployment.md runs it: non-root, read-only
root filesystem, the state on a volume, SIGTERM to stop, a restart to resume."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.simulator import Faults, SimConfig, Simulator
from tests.container.support import (
    archived_ids,
    check,
    compose_health,
    container_env,
    expected_ids,
    http_get,
    metric,
    wait_for,
)
from tests.support.pipeline import assert_exactly_once
from tests.support.podman import (
    healthcheck_command,
    podman,
    run_command,
    start_command,
    stop_command,
    wait_command,
    write_env_file,
)
from tests.support.seaweed import free_ports


async def _state_files(volume: str) -> list[Path]:
    done = check(
        await podman("podman", "volume", "inspect", "--format", "{{.Mountpoint}}", volume),
        "volume inspect",
    )
    root = Path(done.out.strip())
    return [root, *sorted(root.iterdir())]


async def _image_uid(image: str, env_file: str) -> int:
    argv = run_command(
        "unused", image, env_file=env_file, volume=None, args=["-u"], detach=False, entrypoint="id"
    )
    return int(check(await podman(*argv), "id -u").out.strip())


async def test_the_image_archives_stops_on_sigterm_and_resumes(
    image, containers, tmp_path, seaweed, s3_env, s3_settings, make_bucket
):
    now = datetime.now(UTC)
    sim = Simulator(
        SimConfig(
            seed=24,
            calls=6,
            recording_fraction=1.0,
            start=now - timedelta(minutes=50),
            span=timedelta(minutes=40),
            # Four chunks of 64 KiB at least: with the drip below, each transfer lasts
            # over a second, so SIGTERM lands while some are in flight.
            min_size=250_000,
            max_size=300_000,
        )
    )
    storage = s3_settings(await make_bucket(), "archive")
    [port] = free_ports(1)
    service = f"http://127.0.0.1:{port}"
    name = containers.container("run")
    volume = await containers.volume("state")
    async with sim.serve():
        env_file = container_env(tmp_path / "archiver.env", sim, storage, seaweed, port)
        check(
            await podman(*run_command(name, image, env_file=env_file, volume=volume)),
            "podman run",
        )

        async def archived_all() -> bool:
            return await archived_ids(storage) >= expected_ids(sim)

        async def ready() -> bool:
            return (await http_get(f"{service}/readyz"))[0] == 200

        await wait_for(ready, 90, "/readyz", logs_of=name)
        await wait_for(archived_all, 60, "the first calls archived", logs_of=name)
        assert (await http_get(f"{service}/healthz"))[0] == 200
        # The image's own HEALTHCHECK, run by podman inside the container.
        check(await podman(*healthcheck_command(name)), "podman healthcheck run")
        # ...and compose's, run in the same container.
        check(await podman("podman", "exec", name, *compose_health("archiver")), "compose's")
        status, body = await http_get(f"{service}/metrics")
        assert status == 200
        assert metric(body, "archiver_recordings_archived_total") == len(expected_ids(sim))

        # Calls arrive on a slow link: SIGTERM lands while their transfers are in flight.
        sim.set_faults(Faults(drip_seconds=0.4))
        sim.add_calls(4)

        async def in_flight() -> bool:
            status, body = await http_get(f"{service}/metrics")
            return status == 200 and metric(body, "archiver_transfers_in_flight") > 0

        await wait_for(in_flight, 60, "transfers in flight", logs_of=name)
        check(await podman(*stop_command(name)), "podman stop")
        waited = check(await podman(*wait_command(name)), "podman wait")
        # Exit 0: it stopped by itself within the grace (podman's kill would give 137).
        assert waited.out.strip() == "0", (await podman("podman", "logs", name)).err[-3000:]
        logs = await podman("podman", "logs", name)
        assert sim.config.token not in logs.out + logs.err
        # The transfers in flight finished within the grace: none was cut.
        assert "stopping: no new work" in logs.err
        assert "interrupted" not in logs.err

        # The state on the volume belongs to the image's user, readable by it alone.
        uid = await _image_uid(image, env_file)
        assert uid != 0
        root, *files = await _state_files(volume)
        assert any(f.name == "state.sqlite3" for f in files)
        assert root.stat().st_uid == uid
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        for path in files:
            info = path.stat()
            assert (path.name, info.st_uid) == (path.name, uid)
            assert (path.name, oct(stat.S_IMODE(info.st_mode))) == (path.name, oct(0o600))

        # More calls while it is down; the same container started again resumes.
        sim.set_faults(Faults())
        sim.add_calls(3)
        check(await podman(*start_command(name)), "podman start")
        await wait_for(archived_all, 90, "the calls that came while it was down", logs_of=name)
        await wait_for(ready, 60, "/readyz after the restart", logs_of=name)
        check(await podman(*stop_command(name)), "podman stop")
        assert check(await podman(*wait_command(name)), "podman wait").out.strip() == "0"

        # The archive, proved by the image's own `archiver verify` (same settings, same state).
        verify = await podman(
            *run_command(
                name, image, env_file=env_file, volume=volume, args=["verify"], detach=False
            ),
            timeout=120,
        )
        assert verify.code == 0, verify.out + verify.err
    await assert_exactly_once(sim, storage)


@pytest.mark.parametrize(
    ("path", "writable"),
    [("/", False), ("/opt/archiver", False), ("/var/lib/archiver", True), ("/tmp", True)],
)
async def test_the_program_can_write_only_to_its_volume_and_tmp(
    image, containers, tmp_path, path, writable
):
    """A read-only root filesystem: the image's user writes where the docs mount, only."""
    volume = await containers.volume("probe")
    env_file = write_env_file(tmp_path / "empty.env", {})
    probe = f"{path.rstrip('/')}/probe"
    done = await podman(
        *run_command(
            "unused",
            image,
            env_file=env_file,
            volume=volume,
            args=["-c", f"open({probe!r}, 'w').write('x')"],
            detach=False,
            entrypoint="python3",
        )
    )
    assert (done.code == 0) == writable, done.err
    if not writable:
        assert "Read-only file system" in done.err or "Permission denied" in done.err
