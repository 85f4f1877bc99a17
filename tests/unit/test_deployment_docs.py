"""docs/deployment.md shows the commands the container tier runs, flag for flag.

tests/support/podman.py builds every podman command the tests run; here each is
rendered with the names the docs use and must be on the page (a flag added to the
tests and not to the docs, or the other way round, fails this test).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.support.podman import (
    DEFAULT_MIRROR,
    build_command,
    debian_mirror,
    debootstrap_command,
    healthcheck_command,
    import_command,
    run_command,
    start_command,
    stop_command,
    tar_command,
    volume_create_command,
    wait_command,
)
from tests.unit.test_requirements_lock import LOCK_COMMAND

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
IMAGE = "localhost/archiver:local"
ROOTFS = "/tmp/archiver-rootfs"


def _shell_lines() -> set[str]:
    """Every line of the page's sh blocks, continuations joined, spaces collapsed."""
    text = DOCS.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return {" ".join(line.split()) for line in lines if line.strip()}


COMMANDS = {
    "debootstrap": shlex.join(debootstrap_command(ROOTFS, DEFAULT_MIRROR)),
    "import": shlex.join(tar_command(ROOTFS)) + " | " + shlex.join(import_command()),
    "build": shlex.join(build_command(IMAGE)),
    "volume": shlex.join(volume_create_command("archiver-state")),
    "run": shlex.join(
        run_command("archiver", IMAGE, env_file="archiver.env", volume="archiver-state")
    ),
    "healthcheck": shlex.join(healthcheck_command("archiver")),
    "stop": shlex.join(stop_command("archiver")),
    "wait": shlex.join(wait_command("archiver")),
    "start": shlex.join(start_command("archiver")),
    "verify": shlex.join(
        run_command(
            "archiver",
            IMAGE,
            env_file="archiver.env",
            volume="archiver-state",
            args=["verify"],
            detach=False,
        )
    ),
    "console volume": shlex.join(volume_create_command("archiver-console")),
    "console user": shlex.join(
        run_command(
            "archiver-console",
            IMAGE,
            env_file="console.env",
            volume="archiver-console",
            args=["console-user", "add", "auditor", "--role", "listener", "--password-stdin"],
            detach=False,
        )
    ),
    "console": shlex.join(
        run_command(
            "archiver-console",
            IMAGE,
            env_file="console.env",
            volume="archiver-console",
            args=["console"],
        )
    ),
    "replica 1": shlex.join(run_command("archiver-1", IMAGE, env_file="replica.env", volume=None)),
    "replica 2": shlex.join(run_command("archiver-2", IMAGE, env_file="replica.env", volume=None)),
    "lock": ".venv/bin/" + LOCK_COMMAND,
}


@pytest.mark.parametrize("what", sorted(COMMANDS))
def test_the_docs_show_the_command_the_tests_run(what):
    assert COMMANDS[what] in _shell_lines(), f"docs/deployment.md lacks: {COMMANDS[what]}"


def test_the_base_comes_from_the_machine_s_debian_mirror(tmp_path):
    one_line = tmp_path / "sources.list"
    one_line.write_text(
        "# a comment\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\n"
    )
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: https://packages.example/apt\nSuites: nodistro\n\n"
        "Types: deb\nURIs: http://ftp.vn.debian.org/debian\nSuites: bookworm\n"
    )
    other = tmp_path / "other.list"
    other.write_text("deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n")
    assert debian_mirror([one_line, deb822]) == "http://mirror.example/debian"
    assert debian_mirror([other, deb822]) == "http://ftp.vn.debian.org/debian"
    assert debian_mirror([other, tmp_path / "missing"]) == DEFAULT_MIRROR
