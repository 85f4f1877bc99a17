"""A new operator's first week (issue 21): what the CLI says, as a subprocess against
the simulator."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import shlex
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.simulator import Faults, SimConfig, Simulator
from tests.support.cli import DAEMON, QUICK, archiver_env, cli_env, run_cli, start_cli

SINCE, UNTIL = "2021-02-17", "2021-02-18"
pytestmark = pytest.mark.sim(seed=4, calls=5, recording_fraction=1.0, max_size=40_000)


async def test_a_wrong_token_on_a_range_already_archived_is_refused(
    sim: Simulator, tmp_path: Path
) -> None:
    env = archiver_env(tmp_path, sim=sim, tuning=QUICK)
    first = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert first.code == 0, first.err
    wrong = env | {"ARCHIVER_SOURCE__TOKEN": "not-the-token-xyz"}
    r = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=wrong, cwd=tmp_path)
    assert r.code == 1, (r.out, r.err)
    assert r.err.strip().splitlines()[-1].startswith("archiver: authentication failed")
    assert "not-the-token-xyz" not in r.out + r.err
    assert "Traceback" not in r.err
    # The right token on the same range: one request, nothing listed again.
    again = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert again.code == 0, again.err
    assert "listed 0 CDR(s)" in again.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("backfill", "--since", "2021-13-01", "--until", UNTIL), "usage error: "),
        (("backfill", "--since", UNTIL, "--until", SINCE), "usage error: --until must be later"),
        (("search", "--limit", "0"), "usage error: --limit: at least 1"),
        (("audit", "--since", "yesterday-ish"), "usage error: "),
        (("backfill", "--sinse", SINCE), "usage error: the following arguments are required"),
    ],
)
async def test_command_line_mistakes_are_usage_errors(
    sim: Simulator, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    r = await run_cli(*args, env=archiver_env(tmp_path, sim=sim), cwd=tmp_path)
    assert r.code == 2, (r.out, r.err)
    [line] = r.err.splitlines()
    assert line.startswith(f"archiver: {message}"), line
    assert "configuration error" not in line


async def test_the_settings_block_simulate_prints_works_pasted_as_is(tmp_path: Path) -> None:
    proc = await start_cli("simulate", "--port", "0", "--calls", "7", env=cli_env(), cwd=tmp_path)
    try:
        assert proc.stdout is not None
        printed: list[str] = []
        while not printed or not printed[-1].startswith("then: "):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, printed
            printed.append(line.decode().rstrip("\n"))
        assert "started between 2021-02-17 08:00 and 2021-02-17 14:00 Asia/Ho_Chi_Minh" in (
            "\n".join(printed)
        )
        block = [ln for ln in printed if ln.startswith("ARCHIVER_")]
        assert [ln.split("=")[0] for ln in block] == [
            "ARCHIVER_SOURCE__KIND",
            "ARCHIVER_SOURCE__BASE_URL",
            "ARCHIVER_SOURCE__TOKEN",
        ]
        site = tmp_path / "site"
        site.mkdir()
        (site / ".env").write_text("\n".join(block) + "\n")
        commands = printed[-1].removeprefix("then: ").split(" && ")
        assert commands[0] == "archiver check"
        for command in commands:
            r = await run_cli(*shlex.split(command)[1:], env=cli_env(), cwd=site)
            assert r.code == 0, (command, r.out, r.err)
        assert "archived 7 recording(s)" in r.out or "listed 7 CDR(s)" in r.out
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0


async def test_status_as_json_says_what_the_text_says(sim: Simulator, tmp_path: Path) -> None:
    env = archiver_env(tmp_path, sim=sim, tuning=QUICK)
    r = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    r = await run_cli("status", "--format", "json", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["state"] == str(tmp_path / "state.sqlite3")
    assert report["storage"] == str(tmp_path / "archive")
    assert report["recordings"]["archived"] == 5
    assert sum(report["recordings"].values()) == 5
    assert report["provider"] == "cdr_v2"
    assert report["recent_failures"] == []
    text = await run_cli("status", env=env, cwd=tmp_path)
    assert "  archived       5" in text.out
    bad = await run_cli("status", "--format", "yaml", env=env, cwd=tmp_path)
    assert bad.code == 2
    assert bad.err.startswith("archiver: usage error: argument --format")


@pytest.mark.parametrize("folder", ["empty", "absent"])
async def test_the_console_refuses_a_storage_with_no_archive(tmp_path: Path, folder: str) -> None:
    archive = tmp_path / "archive"
    if folder == "empty":
        archive.mkdir()
    env = cli_env({"ARCHIVER_STORAGE__URL": str(archive), "ARCHIVER_CONSOLE__PORT": "0"})
    r = await run_cli("console", env=env, cwd=tmp_path, timeout=60)
    assert r.code == 2, (r.out, r.err)
    assert r.err.splitlines() == [
        f"archiver: configuration error: no archive in {archive}: it holds no manifest "
        "(check ARCHIVER_STORAGE__URL, or archive something first)"
    ]
    assert sorted(p.name for p in tmp_path.rglob("*")) == (["archive"] if folder == "empty" else [])


async def test_audit_times_are_shown_and_filtered_in_utc(sim: Simulator, tmp_path: Path) -> None:
    # The source's zone is UTC+7: a naive time read in it would miss every record by 7 hours.
    env = archiver_env(tmp_path, sim=sim, tuning=QUICK, ARCHIVER_SOURCE__TIMEZONE="Asia/Bangkok")
    r = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    r = await run_cli("search", "--since", SINCE, env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    r = await run_cli("audit", "--format", "json", env=env, cwd=tmp_path)
    [record] = json.loads(r.out)
    shown = str(record["at"])
    assert shown.endswith("Z"), shown
    at = datetime.fromisoformat(shown.replace("Z", "+00:00"))
    # The minute and the day the record shows select it, written as shown, without an offset.
    minute = at.replace(second=0, microsecond=0, tzinfo=None)
    for since, until in (
        (minute, minute + timedelta(minutes=1)),
        (minute.date(), minute.date() + timedelta(days=1)),
    ):
        r = await run_cli(
            "audit",
            "--format",
            "json",
            "--since",
            since.isoformat(),
            "--until",
            until.isoformat(),
            env=env,
            cwd=tmp_path,
        )
        assert r.code == 0, r.err
        assert [x["at"] for x in json.loads(r.out)] == [shown], (since, until)
    table = await run_cli("audit", env=env, cwd=tmp_path)
    assert shown in table.out
    helped = await run_cli("audit", "--help", env=env, cwd=tmp_path)
    assert "Times are UTC, shown and filtered alike" in helped.out
    assert "records of retrievals made calls" not in helped.out


async def _read_log(proc: asyncio.subprocess.Process, seen: list[dict[str, str]]) -> None:
    """Collect ``run``'s JSON log lines into ``seen`` until its stderr closes."""
    assert proc.stderr is not None
    while raw := await proc.stderr.readline():
        seen.append(json.loads(raw))


async def _until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until true, within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout:.0f} s") from None


async def test_a_provider_outage_is_a_few_lines_and_a_normal_stop_is_quiet(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    sim = Simulator(
        SimConfig(seed=2, calls=3, start=now - timedelta(minutes=30), span=timedelta(minutes=20))
    )
    async with sim.serve():
        env = archiver_env(
            tmp_path,
            sim=sim,
            tuning={**QUICK, **DAEMON},
            ARCHIVER_POLL_INTERVAL="0.2",
            ARCHIVER_SOURCE__MAX_ATTEMPTS="3",
            ARCHIVER_SERVICE__ENABLED="false",
        )
        proc = await start_cli("run", env=env, cwd=tmp_path)
        seen: list[dict[str, str]] = []
        reader = asyncio.create_task(_read_log(proc, seen))
        try:
            await _until(lambda: any("poll: " in x["message"] for x in seen), "a first poll")
            before = len(seen)
            sim.set_faults(Faults(api_5xx=1.0))
            failed_from = sim.stats["api_requests"]
            # Every API request fails until 60 of them have (about 20 polls' worth).
            await _until(lambda: sim.stats["api_requests"] - failed_from >= 60, "60 failures")
            during = seen[before:]
            sim.set_faults(Faults())
            await _until(
                lambda: any("answers again" in x["message"] for x in seen[before:]),
                "recovery line",
            )
            [recovered] = [x["message"] for x in seen[before:] if "answers again" in x["message"]]
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)
            await asyncio.wait_for(reader, 10)
    assert proc.returncode == 0
    complaints = [x["message"] for x in during if x["level"] in ("warning", "error")]
    # The old code logged each retry and each failed poll: 60 lines and more here.
    assert 1 <= len(complaints) <= 12, complaints
    assert recovered.startswith("GET "), recovered
    assert "failed attempt(s) over" in recovered, recovered
    assert all("no longer the leader" not in x["message"] for x in seen), seen[-5:]
    assert seen[-1]["message"].startswith("stopped: "), seen[-5:]


def _run_on_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdout and stderr (80 columns); its output."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    proc = subprocess.Popen(  # noqa: S603 (our own command line)
        [sys.executable, "-m", "archiver", *args],
        env=env | {"TERM": "xterm", "COLUMNS": "80"},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    out = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(timeout=120), out.decode(errors="replace")


async def test_log_lines_print_whole_above_the_progress_bar(sim: Simulator, tmp_path: Path) -> None:
    env = archiver_env(
        tmp_path,
        sim=sim,
        tuning=QUICK,
        ARCHIVER_MANIFEST_BATCH="1",
        ARCHIVER_LOG_FORMAT="text",
    )
    args = ["backfill", "--since", SINCE, "--until", UNTIL]
    code, out = await asyncio.to_thread(_run_on_a_terminal, args, env, tmp_path)
    assert code == 0, out
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    # What each line of the terminal finally shows (a bar's redraws end in \r).
    shown = [line.split("\r")[-1] for line in re.split(r"\r?\n", plain)]
    manifest_lines = [line for line in shown if "INFO archiver.manifest: manifest " in line]
    assert len(manifest_lines) == 5, shown
    for line in manifest_lines:
        # Longer than the terminal, yet one line: never cut at 80 columns by the bar's redraw.
        assert len(line) > 80, line
        assert line.endswith("1 lines (created)"), line
