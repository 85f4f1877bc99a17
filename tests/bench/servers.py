"""The servers a benchmark run talks to, and the environments of the commands it measures.

One SeaweedFS (``weed mini``) for the whole run, with one bucket; a simulated
provider per data set, each in a process of its own. Every measured command
writes under a fresh prefix of that bucket, so no leg finds another's objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.support.cli import cli_env
from tests.support.seaweed import SeaweedProcess, SeaweedServer, admin_client

BUCKET = "bench"
ROOT = Path(__file__).resolve().parents[2]
# The summary line of ``archiver backfill``: how many recordings, in how long.
_ARCHIVED = re.compile(r"archived (\d+) recording\(s\).* in ([0-9.]+)s")


def is_code_dir(path: str | Path) -> bool:
    """Whether ``path`` holds an ``archiver/`` package (a copy of the code to measure)."""
    return (Path(path) / "archiver" / "__init__.py").is_file()


def code_pythonpath(code: str | Path) -> str:
    """PYTHONPATH importing the archiver from ``code`` and ``tests`` from this tree."""
    return os.pathsep.join([str(Path(code).resolve()), str(ROOT)])


def use_code(code: str, workdir: Path) -> str:
    """Make every command started from now on import the archiver from ``code``.

    A commit (``HEAD`` by default): that commit's ``archiver/`` exported under
    ``workdir``, so the figures belong to a commit even while others edit the
    tree. ``tree``: the working tree (what the venv's editable install points
    at), uncommitted changes included. A directory holding an ``archiver/``
    package: that copy (to try a change before committing it). Set through
    PYTHONPATH, which every command's environment inherits (``tests`` comes
    from the working tree either way).
    Returns a description of the code measured.
    """
    if code == "tree":
        os.environ["PYTHONPATH"] = str(ROOT)
        dirty = _git("status", "--porcelain", "--", "archiver")
        head = _git("rev-parse", "--short", "HEAD")
        return f"working tree on {head}" + (" (with uncommitted changes)" if dirty else "")
    if is_code_dir(code):
        os.environ["PYTHONPATH"] = code_pythonpath(code)
        return f"the copy in {code}"
    commit = _git("rev-parse", "--short", code)
    export = workdir / f"code-{commit}"
    export.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(  # noqa: S603
        ["git", "archive", "--format=tar", commit, "archiver"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(export)], input=archive, check=True)  # noqa: S603, S607
    # Compiled as an install compiles it: each command measured then loads the
    # bytecode instead of compiling ~120 modules at every start (PYTHONDONTWRITEBYTECODE).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(export)], check=True)  # noqa: S603
    os.environ["PYTHONPATH"] = code_pythonpath(export)
    return f"commit {commit}"


def _git(*args: str) -> str:
    return subprocess.run(  # noqa: S603
        ["git", *args],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@dataclass(frozen=True)
class SimInfo:
    """A running simulated provider: where, how many calls, the range to back up."""

    pid: int
    base_url: str
    calls: int
    size: int
    since: str
    until: str
    token: str


@contextlib.contextmanager
def seaweed(workdir: Path) -> Iterator[tuple[SeaweedServer, int]]:
    """A SeaweedFS server with the bench bucket; yields (server, weed's pid)."""
    workdir.mkdir(parents=True, exist_ok=True)
    process = SeaweedProcess(workdir)
    server = process.start(timeout=60)
    try:
        asyncio.run(_create_bucket(server))
        yield server, process.pid
    finally:
        process.stop()


async def _create_bucket(server: SeaweedServer) -> None:
    async with admin_client(server) as client:
        await client.create_bucket(Bucket=BUCKET)


def provider_requests(sim: SimInfo) -> int:
    """Requests the simulator has answered so far: API calls and recording GETs/HEADs."""
    with urllib.request.urlopen(f"{sim.base_url}/_sim/stats", timeout=10) as resp:  # noqa: S310
        stats = json.load(resp)
    return int(stats.get("api_requests", 0)) + int(stats.get("recording_requests", 0))


@contextlib.contextmanager
def simulator(
    calls: int, size: int, workdir: Path, timeout: float = 300, *, recent: bool = False
) -> Iterator[SimInfo]:
    """``tests.bench.simserver`` serving ``calls`` recordings of ``size`` bytes (``recent``:
    calls of the last hour, for ``archiver run``)."""
    log = (workdir / f"sim-{calls}x{size}.log").open("wb")
    args = ["--calls", str(calls), "--size", str(size), *(["--recent"] if recent else [])]
    proc = subprocess.Popen(  # noqa: S603 (our own argument list)
        [sys.executable, "-m", "tests.bench.simserver", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout)
            raise RuntimeError(f"the simulator exited with {proc.returncode}; see {log.name}")
        info = json.loads(line)
        yield SimInfo(
            pid=proc.pid,
            base_url=info["base_url"],
            calls=info["calls"],
            size=size,
            since=info["since"],
            until=info["until"],
            token=info["token"],
        )
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def aws_env(server: SeaweedServer) -> dict[str, str]:
    """The standard AWS variables for the bench identity (and nothing from the caller)."""
    return {
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": server.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def storage_env(server: SeaweedServer, prefix: str) -> dict[str, str]:
    """The archiver's settings for ``s3://bench/<prefix>`` on ``server``, credentials included."""
    return {
        "ARCHIVER_STORAGE__URL": f"s3://{BUCKET}/{prefix}",
        "ARCHIVER_STORAGE__ENDPOINT_URL": server.endpoint_url,
        "ARCHIVER_STORAGE__ADDRESSING_STYLE": "path",
        **aws_env(server),
    }


def archived_seconds(label: str, stdout: str, calls: int) -> float:
    """The pipeline's own seconds from a backfill's summary; an error unless all were archived."""
    match = _ARCHIVED.search(stdout)
    if match is None or int(match.group(1)) != calls:
        raise RuntimeError(f"{label}: not every recording archived:\n{stdout}")
    return float(match.group(2))


def check_stored(server: SeaweedServer, prefix: str, calls: int, size: int, label: str) -> None:
    """An error unless exactly ``calls`` objects of ``size`` bytes are under ``prefix``."""
    objects, total = asyncio.run(count_objects(server, prefix))
    if (objects, total) != (calls, calls * size):
        raise RuntimeError(
            f"{label}: {objects} objects, {total} bytes under {prefix}; expected {calls} x {size}"
        )


def archiver_env(
    sim: SimInfo,
    server: SeaweedServer,
    *,
    prefix: str,
    state: Path,
    concurrency: int,
    per_host: int,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """``archiver backfill`` against the simulator, into ``s3://bench/<prefix>``.

    No API rate limit: the simulator has none, and the listing is not what is
    measured. Everything else is the default a user gets.
    """
    return cli_env(
        {
            "ARCHIVER_SOURCE__KIND": "cdr_v2",
            "ARCHIVER_SOURCE__BASE_URL": sim.base_url,
            "ARCHIVER_SOURCE__TOKEN": sim.token,
            "ARCHIVER_SOURCE__RATE_LIMIT": "0",
            "ARCHIVER_STATE__URL": str(state),
            "ARCHIVER_CONCURRENCY": str(concurrency),
            "ARCHIVER_PER_HOST_CONNECTIONS": str(per_host),
            **storage_env(server, prefix),
            **(extra or {}),
        }
    )


def archiver_command(
    sim: SimInfo, *args: str, since: datetime | None = None, until: datetime | None = None
) -> list[str]:
    """``python -m archiver backfill`` over the simulator's whole range (or [since, until))."""
    return [
        sys.executable,
        "-m",
        "archiver",
        "backfill",
        "--since",
        since.isoformat(sep=" ") if since else sim.since,
        "--until",
        until.isoformat(sep=" ") if until else sim.until,
        *args,
    ]


def rclone_binary() -> str:
    """The ``rclone`` on PATH (Debian's package), or a clear error."""
    found = shutil.which("rclone")
    if found is None:
        raise RuntimeError("no rclone: apt-get install -y rclone (see docs/performance.md)")
    return found


def rclone_env(server: SeaweedServer, config: Path) -> dict[str, str]:
    """rclone's S3 remote from variables; AWS_* (AWS_CA_BUNDLE included) unset."""
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env.update(
        RCLONE_CONFIG=str(config),
        RCLONE_S3_PROVIDER="Other",
        RCLONE_S3_ENDPOINT=server.endpoint_url,
        RCLONE_S3_ACCESS_KEY_ID=server.access_key,
        RCLONE_S3_SECRET_ACCESS_KEY=server.secret_key,
        RCLONE_S3_REGION=server.region,
    )
    return env


def rclone_command(sim: SimInfo, prefix: str, transfers: int) -> list[str]:
    """``rclone copy`` of the simulator's directory listing into ``bench/<prefix>``.

    ``--checkers`` matches ``--transfers``: rclone HEADs each listed file
    (its size) with the checkers. Otherwise rclone's defaults.
    """
    return [
        rclone_binary(),
        "copy",
        ":http:",
        f":s3:{BUCKET}/{prefix}",
        "--http-url",
        f"{sim.base_url}/recordings/",
        "--transfers",
        str(transfers),
        "--checkers",
        str(transfers),
        "--s3-no-check-bucket",
        "--stats",
        "0",
    ]


def bare_put_command(
    server: SeaweedServer,
    prefix: str,
    count: int,
    size: int,
    concurrency: int,
    shape: str = "bare",
) -> list[str]:
    """``python -m tests.bench.bare_put`` into ``bench/<prefix>``."""
    return [
        sys.executable,
        "-m",
        "tests.bench.bare_put",
        "--endpoint",
        server.endpoint_url,
        "--bucket",
        BUCKET,
        "--prefix",
        prefix,
        "--count",
        str(count),
        "--size",
        str(size),
        "--concurrency",
        str(concurrency),
        "--shape",
        shape,
    ]


def bare_env(server: SeaweedServer) -> dict[str, str]:
    """The bare PUT loop's environment: the bench identity."""
    return cli_env(aws_env(server))


async def count_objects(server: SeaweedServer, prefix: str) -> tuple[int, int]:
    """(objects, bytes) under ``bench/<prefix>``."""
    objects = total = 0
    async with admin_client(server) as client:
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix):
            for item in page.get("Contents", []):
                objects += 1
                total += int(item["Size"])
    return objects, total
