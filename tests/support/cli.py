"""Running the ``archiver`` CLI as a subprocess, and the one builder of its environment."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from archiver.models import Provider
from archiver.settings import StorageSettings
from archiver.simulator import Simulator
from tests.support.seaweed import SeaweedServer

# Quick retries and a quick manifest, for runs against a loopback provider: a
# test waits seconds, not the production minutes, for the pipeline to give up.
QUICK = {
    "ARCHIVER_SOURCE__RATE_LIMIT": "0",
    "ARCHIVER_SOURCE__MAX_BACKOFF": "0.1",
    "ARCHIVER_CONCURRENCY": "4",
    "ARCHIVER_MANIFEST_INTERVAL": "0.2",
    "ARCHIVER_RETRY__INITIAL": "0.05",
    "ARCHIVER_RETRY__MAXIMUM": "0.2",
    "ARCHIVER_RETRY__MAX_ATTEMPTS": "30",
}
# The daemon looks back an hour and takes calls at once (no settling time).
DAEMON = {"ARCHIVER_LOOKBACK": "3600", "ARCHIVER_SETTLE": "0"}


@dataclass
class Result:
    """A finished CLI run."""

    code: int
    out: str
    err: str


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment: no ambient ARCHIVER_ or AWS_ settings leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ARCHIVER_", "AWS_")) and k not in ("PYTHONWARNINGS",)
    }
    env.update(extra or {})
    return env


def source_env(
    base: str, sim: Simulator | None = None, kind: Provider = Provider.CDR_V2
) -> dict[str, str]:
    """The source variables for a provider at ``base``, with ``sim``'s credentials if given."""
    if kind is Provider.EPACIFIC:
        credentials = {
            "ARCHIVER_SOURCE__API_KEY": sim.config.api_key if sim else "k",
            "ARCHIVER_SOURCE__API_SECRET": sim.config.api_secret if sim else "s",
        }
    else:
        credentials = {"ARCHIVER_SOURCE__TOKEN": sim.config.token if sim else "t"}
    return {"ARCHIVER_SOURCE__KIND": kind.value, "ARCHIVER_SOURCE__BASE_URL": base, **credentials}


def archiver_env(
    tmp_path: Path,
    *,
    base: str | None = None,
    sim: Simulator | None = None,
    kind: Provider = Provider.CDR_V2,
    storage: Mapping[str, str] | None = None,
    tuning: Mapping[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """The CLI's clean environment for one test.

    The source is ``base`` (default: ``sim``'s URL) with ``sim``'s credentials;
    the state is ``tmp_path/state.sqlite3``; the storage ``storage`` (default: a
    local folder ``tmp_path/archive``). ``tuning`` then ``extra`` (full
    variable names) override any of them.
    """
    url = base if base is not None else (sim.base_url if sim else None)
    env = source_env(url, sim, kind) if url is not None else {}
    return cli_env(
        {
            **env,
            "ARCHIVER_STATE__URL": str(tmp_path / "state.sqlite3"),
            **(storage if storage is not None else local_storage_env(tmp_path / "archive")),
            **(tuning or {}),
            **extra,
        }
    )


def local_storage_env(root: Path) -> dict[str, str]:
    """The storage variables for a local folder."""
    return {"ARCHIVER_STORAGE__URL": str(root)}


def s3_storage_env(
    settings: StorageSettings, server: SeaweedServer, endpoint: str | None = None
) -> dict[str, str]:
    """The CLI's variables for this S3 storage (``endpoint``: a proxy in front of it)."""
    return {
        "ARCHIVER_STORAGE__URL": settings.url,
        "ARCHIVER_STORAGE__ENDPOINT_URL": endpoint or server.endpoint_url,
        "ARCHIVER_STORAGE__ADDRESSING_STYLE": "path",
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": server.region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


async def start_cli(
    *args: str, env: dict[str, str], cwd: Path, stdin: int | None = None
) -> asyncio.subprocess.Process:
    """Start ``python -m archiver ARGS`` in its own session (so a test can signal its group)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "archiver",
        *args,
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


async def stderr_until(proc: asyncio.subprocess.Process, text: str, timeout: float) -> bytes:
    """Read ``proc``'s standard error up to the line that holds ``text`` (the process
    got as far as saying it); what was read, for the test to keep with the rest."""
    assert proc.stderr is not None
    read = b""
    async with asyncio.timeout(timeout):
        while text.encode() not in read:
            line = await proc.stderr.readline()
            if not line:
                raise AssertionError(f"the process ended before saying {text!r}: {read[-2000:]!r}")
            read += line
    return read


async def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 90.0, stdin: bytes | None = None
) -> Result:
    """Run the CLI to its end (``stdin``: its standard input); kill its group if it outlasts
    ``timeout``."""
    pipe = None if stdin is None else asyncio.subprocess.PIPE
    proc = await start_cli(*args, env=env, cwd=cwd, stdin=pipe)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())
