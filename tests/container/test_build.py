"""The build itself: a broken Dockerfile fails the tier with a clear message, and the
build context holds only what .dockerignore lets through."""

from __future__ import annotations

import os
import uuid
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
    # Strays as a checkout holds them after the docs' own commands (a venv, a state
    # database, an .env with secrets, bytecode inside the package): unique names,
    # removed afterwards, so that a developer's own files are never touched.
    tag = uuid.uuid4().hex[:8]
    strays = [
        REPO / f".venv-probe-{tag}" / "lib.py",
        REPO / f"archiver-state-probe-{tag}.sqlite3",
        REPO / f".env-probe-{tag}",
        REPO / "archiver" / f"__pycache__-probe-{tag}" / "__pycache__" / "x.pyc",
        REPO / "archiver" / f"probe-{tag}.pyc",
    ]
    made: list[Path] = []
    try:
        for path in strays:
            for parent in reversed(path.relative_to(REPO).parents):
                if not (REPO / parent).exists():
                    (REPO / parent).mkdir()
                    made.append(REPO / parent)
            path.write_text("stray")
            made.append(path)
        allowed = _allowed_files()
        probe = build(
            image_tag("archiver-context"), "tests/container/context/Dockerfile", base_image
        )
    finally:
        for path in reversed(made):
            path.rmdir() if path.is_dir() else path.unlink()
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
    assert sent == allowed
    assert not any("probe" in name for name in sent)
