"""Where the archiver's CPU goes: its throughput run under py-spy.

py-spy samples the running process from outside (no instrumentation, so the
run keeps its speed) and leaves idle threads out: what it records is CPU. The
raw stacks are kept in the results folder; the summary lists the functions
with the most samples of their own (self) and the archiver functions with the
most samples under them (inclusive), and the share of each library.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench.throughput import Setup, run_archiver

_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*)\)$")


def py_spy() -> str:
    """py-spy from the venv (the ``bench`` extra), else PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.is_file() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("no py-spy: pip install -e '.[bench]'")
    return found


def run(setup: Setup, results: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """One archiver run under ``py-spy record``; the summary of its stacks."""
    results.mkdir(parents=True, exist_ok=True)
    raw = results / "profile-archiver.txt"
    wrap = [py_spy(), "record", "--rate", "200", "--format", "raw", "--nolineno", "-o", str(raw)]
    leg = run_archiver(setup, 0, name="profiled", wrap=[*wrap, "--"])
    summary = summarize(raw.read_text())
    summary["wall_s_under_profiler"] = leg.wall
    summary["raw_stacks"] = str(raw)
    for row in summary["by_package"][:8]:
        log(f"  {row['share']:6.1%}  {row['name']}")
    return summary


def _package(path: str) -> str:
    """What a frame's file belongs to: ``archiver.<module>``, else the top-level package.

    py-spy names files relative to their ``sys.path`` entry (``aiohttp/client.py``).
    """
    if path.startswith("archiver/") or "/archiver/" in path:
        module = path.rsplit("archiver/", 1)[1].removesuffix(".py").replace("/", ".")
        return f"archiver.{module}"
    top = path.split("/", 1)[0] if "/" in path else path
    return top.removesuffix(".py") or "?"


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text)
    if match is None:
        return text, "?"
    return match.group("func"), match.group("path")


def summarize(raw: str, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample counts from py-spy's raw (collapsed) stacks."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = threads = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if stack.startswith("Thread._bootstrap"):
            # Worker threads (aiosqlite's, the executor's): py-spy takes some of
            # their blocking waits for work, so they are counted apart; the
            # threads' true CPU is in the throughput table (psutil).
            threads += count
            continue
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        func, path = frames[-1]
        leaf = f"{func} [{_package(path)}]"
        self_time[leaf] += count
        packages[_package(path)] += count
        seen = set()
        for func, path in frames:
            name = f"{func} [{_package(path)}]"
            if name not in seen:
                seen.add(name)
                inclusive[name] += count

    def rows(counter: Counter[str], only: Callable[[str], bool] = lambda _: True) -> list[Any]:
        return [
            {"name": name, "samples": n, "share": n / total if total else 0.0}
            for name, n in counter.most_common()
            if only(name)
        ][:top]

    return {
        "samples": total,
        "other_thread_samples": threads,
        "self": rows(self_time),
        "by_package": rows(packages),
        "archiver_inclusive": rows(inclusive, lambda name: "[archiver." in name),
        "inclusive": rows(inclusive),
    }
