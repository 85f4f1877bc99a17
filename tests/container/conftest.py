"""The container tier: docker/Dockerfile built with podman and run as users run it.

Every test here is marked ``container`` (``pytest -m container`` runs this tier
alone, ``-m "not container"`` leaves it out). Missing podman, runc or
debootstrap FAILS the tier: an image test never counts as passed by being skipped.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.podman import (
    BuildError,
    PodmanMissingError,
    build,
    ensure_base,
    image_tag,
    podman,
    require_tools,
    volume_create_command,
)

CONTAINER_TEST_TIMEOUT = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.container)
            # The first test also waits for the base and the build (minutes on a
            # fresh machine): past the suite-wide 120 s.
            if not item.get_closest_marker("timeout"):
                item.add_marker(pytest.mark.timeout(CONTAINER_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def base_image() -> str:
    """The Debian base (debootstrap + podman import), made once per machine."""
    try:
        require_tools()
        return ensure_base()
    except (PodmanMissingError, BuildError) as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def image(base_image: str) -> Iterator[str]:
    """docker/Dockerfile built on the Debian base: this checkout's image tag."""
    try:
        yield build(image_tag(), base=base_image)
    except BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


class Containers:
    """Names for this test's containers and volumes, all removed at its end."""

    def __init__(self) -> None:
        self.prefix = f"archiver-test-{uuid.uuid4().hex[:8]}"
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def container(self, role: str) -> str:
        """A fresh container name."""
        name = f"{self.prefix}-{role}"
        self.containers.append(name)
        return name

    async def volume(self, role: str) -> str:
        """A fresh named volume."""
        name = f"{self.prefix}-{role}"
        done = await podman(*volume_create_command(name))
        assert done.code == 0, done.err
        self.volumes.append(name)
        return name

    async def remove(self) -> None:
        """Force-remove everything (a container still running is killed)."""
        for name in self.containers:
            with contextlib.suppress(Exception):
                await podman("podman", "rm", "--force", "--volumes", "--time", "0", name)
        for name in self.volumes:
            with contextlib.suppress(Exception):
                await podman("podman", "volume", "rm", "--force", name)


@pytest.fixture
async def containers() -> AsyncIterator[Containers]:
    """Containers and volumes of this test, removed afterwards."""
    made = Containers()
    try:
        yield made
    finally:
        await made.remove()
