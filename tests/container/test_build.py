"""The build itself: a broken Dockerfile fails the tier with a clear message, and the
build context holds only what .dockerignore lets through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.container.support import check
from tests.support.podman import REPO, BuildError, build, image_tag, podman, run_command


def test_a_dockerfile_with_a_broken_copy_fails_the_build_clearly(base_image):
    with pytest.raises(BuildError) as failed:
        build(image_tag("archiver-broken"), "tests/container/broken/Dockerfile", base_image)
    message = str(failed.value)
    assert message.startswith("podman build of tests/container/broken/Dockerfile failed")
    assert "COPY archivr /src/archiver" in message
    assert "no such file or directory" in message
    assert len(message.splitlines()) == 1, message


def _allowed_files() -> set[str]:
    found = {"pyproject.toml", "README.md", "docker/requirements.lock"}
    for folder, dirs, files in os.walk(REPO / "archiver"):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if not name.endswith((".pyc", ".pyo", ".swp")):
                found.add(str((Path(folder) / name).relative_to(REPO)))
    return found


async def test_the_build_context_is_only_what_the_image_needs(base_image, tmp_path):
    # A checkout after the docs' own commands: a virtual environment, state, an archive.
    assert (REPO / ".venv").is_dir(), "the test expects the checkout's .venv to be there"
    probe = build(image_tag("archiver-context"), "tests/container/context/Dockerfile", base_image)
    env_file = str(tmp_path / "empty.env")
    Path(env_file).touch()
    listing = check(
        await podman(
            *run_command(
                "unused",
                probe,
                env_file=env_file,
                volume=None,
                args=["/context", "-type", "f"],
                detach=False,
                entrypoint="find",
            )
        ),
        "find /context",
    )
    sent = {line.removeprefix("/context/") for line in listing.out.split()}
    assert sent == _allowed_files()
