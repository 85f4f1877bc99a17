"""docker/compose.yaml's simulator service run from the image as compose runs it: its
command, on a network of its own (port 8080 inside), answering its health check."""

from __future__ import annotations

import yaml

from tests.container.support import check, compose_health, wait_for
from tests.support.podman import PODMAN, REPO, ULIMITS, podman


async def test_the_compose_simulator_service_runs_and_is_healthy(image, containers):
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    service = compose["services"]["simulator"]
    name = containers.container("simulator")
    # podman's default bridge network: the container's own port 8080, as in compose.
    check(
        await podman(
            *PODMAN, "run", "--detach", "--name", name, *ULIMITS, image, *service["command"]
        ),
        "podman run simulator",
    )

    async def healthy() -> bool:
        return (await podman("podman", "exec", name, *compose_health("simulator"))).code == 0

    await wait_for(healthy, 60, "the simulator's health check", logs_of=name)
