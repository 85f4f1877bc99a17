"""The measurements over a generated archive: each leg a measured subprocess.

Legs (``measure --legs``):

- ``index``: the console's index from nothing (``CallIndex.refresh`` on a fresh
  file, in a process of its own): wall, lines/s, peak RSS, the file's bytes per
  million lines;
- ``search``: the console's searches on that index (phone, extension, agent, day,
  id, direction, everything; 30 each, values from the archive): p50/p95;
- ``cli-search``: ``archiver search`` of the whole archive, twice: a query no line
  answers (every line read, nothing kept), and every call as CSV (every line kept
  and written; the output's bytes);
- ``get``: ``archiver get ID --url`` with no local index (cold), then three
  other calls (warm);
- ``verify-day``: ``archiver verify --since D --until D+1`` of a day of the
  service; ``verify``: the full ``archiver verify``; on S3 each through a
  counting proxy (requests per recording);
- ``rollup``: ``archiver rollup`` (where the code has it: it adds rollups to the
  archive, so the legs after it read them);
- ``reconcile``: ``archiver reconcile`` of 30 days against a simulator serving
  those days' calls (``python -m tests.bench.shape.sim``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from archiver.settings import StorageSettings
from tests.bench import measure
from tests.bench.latency import delaying_proxy
from tests.bench.measure import MIB
from tests.bench.servers import use_code
from tests.bench.shape.samples import sample_calls
from tests.support.cli import cli_env, s3_storage_env
from tests.support.seaweed import SeaweedProcess, admin_client
from tests.support.shape.plan import START, Shape, sim_config

BUCKET = "bench"
PREFIX = "shape"
ROOT = Path(__file__).resolve().parents[3]


@contextlib.contextmanager
def seaweed_storage(
    workdir: Path, *, fresh: bool = False
) -> Iterator[tuple[StorageSettings, dict[str, str]]]:
    """A SeaweedFS of the bench's own, data in ``workdir/seaweed`` (kept between runs):
    the storage settings and the CLI's variables for ``s3://bench/shape``."""
    process = SeaweedProcess(workdir / "seaweed")
    (workdir / "seaweed").mkdir(parents=True, exist_ok=True)
    server = process.start(timeout=120)
    try:
        if fresh:
            asyncio.run(_create_bucket(server))
        settings = StorageSettings(
            url=f"s3://{BUCKET}/{PREFIX}", endpoint_url=server.endpoint_url, addressing_style="path"
        )
        env = s3_storage_env(settings, server)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            os.environ[name] = env[name]
        yield settings, env
    finally:
        process.stop()


async def _create_bucket(server: Any) -> None:
    async with admin_client(server) as client:
        await client.create_bucket(Bucket=BUCKET)


def _cli(name: str, args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    run = measure.run(name, [sys.executable, "-m", "archiver", *args], env=env, cwd=cwd,
                      timeout=7200)  # fmt: skip
    return {
        "wall_s": round(run.wall, 2),
        "cpu_s": round(run.cpu, 1),
        "peak_rss_mib": round(run.peak_rss / MIB),
        "exit": run.returncode,
        "stdout_tail": run.stdout.strip().splitlines()[-3:],
        "stderr_tail": [line[:300] for line in run.stderr.strip().splitlines()[-2:]],
    }


def _python(name: str, module_args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    run = measure.run(name, [sys.executable, "-m", *module_args], env=env, cwd=cwd, timeout=7200)
    run.check()
    out: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    out.update(wall_s=round(run.wall, 2), cpu_s=round(run.cpu, 1),
               peak_rss_mib=round(run.peak_rss / MIB))  # fmt: skip
    return out


# The storage requests so far (S3, through the proxy); None on a local folder.
Count = Callable[[], int] | None


def _with_requests(
    result: dict[str, Any], requests: Count, before: int, recordings: int
) -> dict[str, Any]:
    if requests is not None:
        count = requests() - before
        result["requests"] = count
        result["requests_per_recording"] = round(count / max(recordings, 1), 3)
    return result


def run_measure(workdir: Path, legs: list[str], label: str, code: str) -> dict[str, Any]:
    """Measure ``legs`` over the archive in ``workdir`` with the archiver of ``code`` (a
    commit, exported, or ``tree``: see :func:`tests.bench.servers.use_code`); the results
    (also saved)."""
    described = use_code(code, workdir)
    info = json.loads((workdir / "shape.json").read_text())
    shape = Shape(**info["shape"])
    if info["storage"] == "s3":
        with seaweed_storage(workdir) as (settings, env):
            assert settings.endpoint_url is not None
            # A TCP proxy that knows S3 requests: the Host header (signed) goes through as sent.
            with delaying_proxy(settings.endpoint_url, 0.0) as (endpoint, count):
                proxied = {**env, "ARCHIVER_STORAGE__ENDPOINT_URL": endpoint}
                results = _legs(workdir, shape, legs, proxied, count, label)
    else:
        env = {"ARCHIVER_STORAGE__URL": str(workdir / "archive")}
        results = _legs(workdir, shape, legs, env, None, label)
    out = {
        "label": label,
        "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_avg_at_end": os.getloadavg(),
        "code": described,
        **info,
        "legs": results,
    }
    name = f"results-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json"
    (workdir / name).write_text(json.dumps(out, indent=1))
    return out


def _legs(
    workdir: Path,
    shape: Shape,
    legs: list[str],
    storage: dict[str, str],
    requests: Count,
    label: str,
) -> dict[str, Any]:
    recordings = shape.calls
    # Files of their own per label: measurements of two codes may run side by side.
    get_index = workdir / f"get-index-{label}.sqlite3"
    console_index = workdir / f"console-index-{label}.sqlite3"
    env = cli_env({**storage, "ARCHIVER_OPERATOR": "bench",
                   "ARCHIVER_CONSOLE__INDEX_PATH": str(get_index),
                   "PYTHONPATH": os.environ["PYTHONPATH"]})  # fmt: skip
    middle = START + timedelta(days=shape.days // 2 + (1 if shape.days > 4 else 0))
    samples = sample_calls(shape, middle + timedelta(hours=9), 40)
    out: dict[str, Any] = {}
    for leg in legs:
        before = requests() if requests is not None else 0
        if leg == "index":
            _remove(console_index)
            result = _python("index", ["tests.bench.shape.index", "build", str(console_index)],
                             env, workdir)  # fmt: skip
            size = sum(p.stat().st_size for p in workdir.glob(f"{console_index.name}*"))
            result["index_bytes"] = size
            result["bytes_per_million_lines"] = round(size / max(result["lines"], 1) * 1e6)
            result["lines_per_s"] = round(result["lines"] / max(result["wall_s"], 1e-9))
        elif leg == "search":
            (workdir / "samples.json").write_text(json.dumps(samples))
            result = _python("search", ["tests.bench.shape.index", "search", str(console_index),
                                        str(workdir / "samples.json")], env, workdir)  # fmt: skip
        elif leg == "cli-search":
            none = _cli("search-none", ["search", "--agent", "no such agent"], env, workdir)
            every = _cli("search-all", ["search", "--format", "csv"], env, workdir)
            every["output_bytes"] = (workdir / "search-all.stdout").stat().st_size
            (workdir / "search-all.stdout").unlink()
            result = {"nothing": none, "everything": every}
        elif leg == "get":
            _remove(get_index)
            ids = [s["cdr_id"] for s in samples[:4]]
            result = {"cold": _cli("get-cold", ["get", ids[0], "--url"], env, workdir)}
            result["warm"] = [_cli(f"get-{i}", ["get", i, "--url"], env, workdir) for i in ids[1:]]
        elif leg == "verify-day":
            day = middle.date().isoformat()
            until = (middle + timedelta(days=1)).date().isoformat()
            result = _cli("verify-day", ["verify", "--since", day, "--until", until], env, workdir)
            result["day"] = day
            result = _with_requests(result, requests, before, shape.per_day)
        elif leg == "verify":
            result = _cli("verify", ["verify"], env, workdir)
            result = _with_requests(result, requests, before, recordings)
        elif leg == "rollup":
            result = _cli("rollup", ["rollup"], env, workdir)
            result = _with_requests(result, requests, before, recordings)
        elif leg == "reconcile":
            result = _reconcile(workdir, shape, env)
        else:
            raise SystemExit(f"unknown leg {leg!r}")
        print(f"{leg}: {json.dumps(result)}", file=sys.stderr, flush=True)
        out[leg] = result
    return out


def _reconcile(workdir: Path, shape: Shape, env: dict[str, str]) -> dict[str, Any]:
    since = START + timedelta(days=max(0, shape.days // 2 - 15))
    until = min(since + timedelta(days=30), START + shape.span)
    import subprocess

    config = sim_config(shape)
    log = (workdir / "sim.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "tests.bench.shape.sim", "--calls", str(config.calls),
         "--seed", str(config.seed), "--per-day", str(shape.per_day),
         "--since", since.isoformat(), "--until", until.isoformat()],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # the simulator of this tree
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        source = {
            "ARCHIVER_SOURCE__KIND": "cdr_v2",
            "ARCHIVER_SOURCE__BASE_URL": ready["base_url"],
            "ARCHIVER_SOURCE__TOKEN": ready["token"],
            "ARCHIVER_SOURCE__RATE_LIMIT": "0",
        }
        args = ["reconcile", "--since", since.date().isoformat(),
                "--until", until.date().isoformat()]  # fmt: skip
        result = _cli("reconcile", args, {**env, **source}, workdir)
        result.update(since=since.date().isoformat(), until=until.date().isoformat(),
                      provider_calls=ready["calls"], sim_start_s=ready["start_s"])  # fmt: skip
        return result
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
