"""Running one command and measuring it: wall time, CPU seconds, peak RSS of its tree.

Peak RSS comes from two places and the larger wins: each process's own high-water
mark (``VmHWM`` of ``/proc/PID/status``, read at every sample: exact for one process
but for the last interval before it exits), and the sum over the process and all
its descendants sampled with psutil (catches a tree, may miss a spike between
samples). The samples are kept: the memory legs read the curve.

Not ``ru_maxrss`` from ``wait4``: Linux carries the high-water mark of the memory a
process replaced at exec into it, and a child started by ``subprocess`` (vfork, then
exec) replaces its parent's memory: its ``ru_maxrss`` is at least the *measuring*
process's peak (seen: a ``get`` of 45 MB reported as 281 MiB, the bench's own peak).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MIB = 1024 * 1024


@dataclass
class Measured:
    """What one run of a command cost."""

    name: str
    wall: float
    cpu: float  # user + system seconds of the process (and the children it waited for)
    peak_rss: int  # bytes
    returncode: int
    stdout: str
    stderr: str
    # (seconds since start, RSS of the whole tree in bytes)
    samples: list[tuple[float, int]] = field(default_factory=list, repr=False)
    # CPU seconds of the root process's main thread, and of all its other threads
    # (last sample before exit: a little short of the true figure).
    main_thread_cpu: float = 0.0
    other_threads_cpu: float = 0.0

    def check(self) -> Measured:
        """Raise with the command's own words if it failed."""
        if self.returncode != 0:
            raise RuntimeError(
                f"{self.name} exited with {self.returncode}:\n{self.stdout[-2000:]}\n"
                f"{self.stderr[-4000:]}"
            )
        return self


def tree_rss(proc: psutil.Process) -> int:
    """RSS of a process and all its descendants, in bytes (0 once it is gone)."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def high_water(pid: int) -> int:
    """The kernel's peak RSS of one process since its exec, in bytes (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (0 if gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def run(
    name: str,
    args: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    interval: float = 0.05,
) -> Measured:
    """Run ``args`` to the end, sampling the tree's RSS every ``interval`` seconds.

    The command runs in a session of its own; on timeout the whole session is
    killed and TimeoutError raised.
    """
    out_path, err_path = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(  # noqa: S603 (our own argument list)
            list(args),
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    samples: list[tuple[float, int]] = []
    threads: dict[int, float] = {}
    hwm: dict[int, int] = {}  # each process of the tree: its VmHWM, last read
    done = threading.Event()

    def sample() -> None:
        ps = psutil.Process(proc.pid)
        while not done.is_set():
            rss = tree_rss(ps)
            if rss:
                samples.append((time.monotonic() - started, rss))
            try:
                pids = [proc.pid, *(c.pid for c in ps.children(recursive=True))]
            except psutil.Error:
                pids = [proc.pid]
            for pid in pids:
                hwm[pid] = max(hwm.get(pid, 0), high_water(pid))
            try:
                for t in ps.threads():
                    threads[t.id] = t.user_time + t.system_time
            except psutil.Error:
                pass
            done.wait(interval)

    sampler = threading.Thread(target=sample, name=f"rss-{name}", daemon=True)
    sampler.start()
    timer = threading.Timer(timeout, _kill_session, (proc.pid,))
    timer.start()
    try:
        # wait4, not Popen.wait: it returns the child's own resource usage.
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
        done.set()
        sampler.join()
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode == -signal.SIGKILL and wall >= timeout:
        raise TimeoutError(f"{name} did not finish in {timeout:.0f}s")
    peak = max([0, *hwm.values()] + [rss for _, rss in samples])
    return Measured(
        name=name,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss=peak,
        returncode=proc.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        samples=samples,
        main_thread_cpu=threads.get(proc.pid, 0.0),
        other_threads_cpu=sum(cpu for tid, cpu in threads.items() if tid != proc.pid),
    )


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def repeat(
    name: str,
    command: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    times: int = 3,
) -> list[Measured]:
    """``command`` run ``times`` times in a row, each checked to have exited 0."""
    return [
        run(f"{name}-{i}", command, env=env, cwd=cwd, timeout=timeout).check() for i in range(times)
    ]


def cli_startup_s(env: dict[str, str], cwd: Path, command: str) -> float:
    """The median wall time of ``archiver COMMAND --help``: what that command pays to start
    (its own module and what it imports; ``archiver --help`` alone imports every command)."""
    argv = [sys.executable, "-m", "archiver", command, "--help"]
    runs = repeat("help", argv, env=env, cwd=cwd, timeout=60)
    return median([r.wall for r in runs])


def median(values: Sequence[float]) -> float:
    """The median, or NaN for none."""
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> float:
    """(max - min) / median: how noisy repetitions were (0 for fewer than two)."""
    if len(values) < 2:
        return 0.0
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid else 0.0
