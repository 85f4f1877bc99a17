"""Running the ``archiver`` CLI as a subprocess, without blocking the test's event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: no ambient ARCHIVER_ or AWS_ settings leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ARCHIVER_", "AWS_")) and k not in ("PYTHONWARNINGS",)
    }
    env.update(extra or {})
    return env


async def start_cli(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "archiver",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


async def run_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 90.0) -> Result:
    proc = await start_cli(*args, env=env, cwd=cwd)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())
