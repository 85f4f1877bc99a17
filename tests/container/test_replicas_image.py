"""Two ``archiver run`` containers of the image sharing one PostgreSQL state on the host:
one leads, both transfer; the leader stopped, the other leads and archives what comes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from archiver.simulator import SimConfig, Simulator
from tests.container.support import (
    archived_ids,
    check,
    container_env,
    expected_ids,
    http_get,
    metric,
    wait_for,
)
from tests.support.pipeline import assert_exactly_once
from tests.support.podman import podman, run_command, stop_command, wait_command
from tests.support.seaweed import free_ports


async def test_two_replica_containers_share_a_postgres_state(
    image, containers, tmp_path, seaweed, s3_env, s3_settings, make_bucket, postgres_url
):
    now = datetime.now(UTC)
    sim = Simulator(
        SimConfig(
            seed=25,
            calls=10,
            recording_fraction=1.0,
            start=now - timedelta(minutes=50),
            span=timedelta(minutes=40),
            max_size=200_000,
        )
    )
    storage = s3_settings(await make_bucket(), "replicas")
    ports = free_ports(2)
    names = [containers.container(f"replica-{i}") for i in (1, 2)]
    async with sim.serve():
        env_files = [
            container_env(
                tmp_path / f"replica-{i}.env",
                sim,
                storage,
                seaweed,
                port,
                ARCHIVER_STATE__URL=postgres_url,
                # A stopped leader hands over within a third of this.
                ARCHIVER_LEADER_LEASE="6",
            )
            for i, port in enumerate(ports)
        ]
        for name, env_file in zip(names, env_files, strict=True):
            # No state volume: the state is in PostgreSQL (the image's VOLUME stays anonymous).
            check(
                await podman(*run_command(name, image, env_file=env_file, volume=None)),
                "podman run replica",
            )

        async def leaders() -> list[float]:
            found = []
            for port in ports:
                status, body = await http_get(f"http://127.0.0.1:{port}/metrics")
                found.append(metric(body, "archiver_leader") if status == 200 else -1.0)
            return found

        async def one_leader() -> bool:
            return sorted(await leaders()) == [0.0, 1.0]

        async def archived_all() -> bool:
            return await archived_ids(storage) >= expected_ids(sim)

        await wait_for(one_leader, 90, "one leader among two replicas", logs_of=names[0])
        await wait_for(archived_all, 60, "the calls archived", logs_of=names[0])
        for port, name in zip(ports, names, strict=True):

            async def ready(port: int = port) -> bool:
                return (await http_get(f"http://127.0.0.1:{port}/readyz"))[0] == 200

            await wait_for(ready, 60, "both replicas ready", logs_of=name)

        leader = (await leaders()).index(1.0)
        follower = 1 - leader
        check(await podman(*stop_command(names[leader])), "podman stop leader")
        assert check(await podman(*wait_command(names[leader])), "wait").out.strip() == "0"
        sim.add_calls(4)

        async def follower_leads() -> bool:
            status, body = await http_get(f"http://127.0.0.1:{ports[follower]}/metrics")
            return status == 200 and metric(body, "archiver_leader") == 1.0

        await wait_for(follower_leads, 60, "the other replica leading", logs_of=names[follower])
        await wait_for(archived_all, 60, "the new calls archived", logs_of=names[follower])
        logs = await podman("podman", "logs", names[follower])
        assert re.search(r"leader now", logs.err + logs.out)
        check(await podman(*stop_command(names[follower])), "podman stop follower")
        assert check(await podman(*wait_command(names[follower])), "wait").out.strip() == "0"

        verify = await podman(
            *run_command(
                "unused", image, env_file=env_files[0], volume=None, args=["verify"], detach=False
            ),
            timeout=120,
        )
        assert verify.code == 0, verify.out + verify.err
    await assert_exactly_once(sim, storage)
