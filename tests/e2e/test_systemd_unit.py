"""deploy/systemd/archiver.service: its ExecStart, run as the unit gives it (its
Environment lines, an EnvironmentFile, its working directory), starts ``archiver run``
against the simulator and stops cleanly on the unit's KillSignal."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver.simulator import SimConfig, Simulator
from tests.support.cli import DAEMON, QUICK, cli_env, source_env

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "archiver.service"


def service_section() -> list[tuple[str, str]]:
    """The [Service] section's ``Key=value`` lines, in order (keys may repeat)."""
    section, lines = "", []
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            lines.append((key.strip(), value.strip()))
    return lines


def environment_file(path: Path) -> dict[str, str]:
    """systemd's EnvironmentFile: KEY=VALUE lines, # comments, optional quotes."""
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = " ".join(shlex.split(value)) if value else ""
    return values


def test_the_unit_declares_what_the_archiver_needs() -> None:
    service = dict(service_section())
    assert service["ExecStart"].split()[1:] == ["run"]
    assert service["KillSignal"] == "SIGTERM"
    assert service["RestartPreventExitStatus"] == "2"  # a configuration mistake: no loop
    assert service["UMask"] == "0077"  # files 0600, folders 0700
    assert float(service["TimeoutStopSec"]) > 20  # more than ARCHIVER_GRACE's default
    assert service["EnvironmentFile"] == "/etc/archiver/archiver.env"


async def test_the_units_command_line_runs_and_stops_on_its_kill_signal(tmp_path: Path) -> None:
    service = service_section()
    now = datetime.now(UTC)
    sim = Simulator(
        SimConfig(seed=3, calls=3, start=now - timedelta(minutes=20), span=timedelta(minutes=10))
    )
    async with sim.serve():
        # What an operator writes into /etc/archiver/archiver.env (here a file of the test's).
        settings = tmp_path / "archiver.env"
        settings.write_text(
            "".join(
                f"{k}={v}\n"
                for k, v in {**source_env(sim.base_url, sim), **QUICK, **DAEMON}.items()
            )
            + "ARCHIVER_POLL_INTERVAL=0.3\nARCHIVER_SERVICE__ENABLED=false\n"
        )
        env = cli_env()
        for key, value in service:
            if key == "EnvironmentFile":
                env |= environment_file(settings)
            elif key == "Environment":
                env |= dict(item.split("=", 1) for item in shlex.split(value))
        [command] = [value for key, value in service if key == "ExecStart"]
        program, *args = shlex.split(command)
        assert program == "/opt/archiver/bin/archiver"
        # The venv's console script stands in for /opt/archiver/bin/archiver.
        installed = Path(sys.executable).parent / "archiver"
        workdir = tmp_path / "var-lib-archiver"  # WorkingDirectory, made by StateDirectory
        workdir.mkdir(mode=0o700)
        proc = await asyncio.create_subprocess_exec(
            str(installed),
            *args,
            env=env,
            cwd=workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        messages: list[str] = []
        try:
            assert proc.stderr is not None
            while not any(m.startswith("poll: ") for m in messages):
                line = await asyncio.wait_for(proc.stderr.readline(), 60)
                assert line, messages
                messages.append(json.loads(line)["message"])  # ARCHIVER_LOG_FORMAT=json
        finally:
            kill = dict(service)["KillSignal"]
            proc.send_signal(getattr(signal, kill))
            stop = float(dict(service)["TimeoutStopSec"])
            _, rest = await asyncio.wait_for(proc.communicate(), stop)
    assert proc.returncode == 0, rest.decode()
    assert "listed 3" in next(m for m in messages if m.startswith("poll: "))
    # The state went where the unit says, relative to its working directory.
    state = workdir / "archiver-state.sqlite3"
    assert state.is_file()
    assert state.stat().st_mode & 0o777 == 0o600
    assert (workdir / "archive").is_dir()
    assert os.stat(workdir / "archive").st_mode & 0o777 == 0o700
