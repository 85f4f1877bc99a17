"""The first hour with the archiver (issue 12), as a new user meets it: the CLI as a
subprocess, from an empty working directory."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.simulator import Faults, SimConfig, Simulator
from tests.support.cli import DAEMON, QUICK, archiver_env, cli_env, run_cli, start_cli

# The simulator's calls (its default day) and a small archive of them.
SINCE, UNTIL = "2021-02-17", "2021-02-18"
pytestmark = pytest.mark.sim(seed=3, calls=6, recording_fraction=1.0, max_size=40_000)


def files_under(root: Path) -> list[Path]:
    """Every file and folder below ``root``."""
    return sorted(root.rglob("*"))


# -- typos in settings -----------------------------------------------------------------------


async def test_misspelled_variables_are_warned_about_with_the_real_name(
    sim: Simulator, tmp_path: Path
) -> None:
    env = archiver_env(tmp_path, sim=sim, ARCHIVER_STORAGE__URLL="s3://x", ARCHIVER_CONCURENCY="4")
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    assert (
        "archiver: warning: ARCHIVER_STORAGE__URLL (environment) is not a setting and is "
        "ignored; did you mean ARCHIVER_STORAGE__URL?"
    ) in r.err
    assert "ARCHIVER_CONCURENCY (environment) is not a setting" in r.err
    assert "did you mean ARCHIVER_CONCURRENCY?" in r.err


async def test_a_misspelled_kind_names_the_misspelling(sim: Simulator, tmp_path: Path) -> None:
    env = archiver_env(tmp_path, sim=sim)
    env["ARCHIVER_SOURCE__KNID"] = env.pop("ARCHIVER_SOURCE__KIND")
    (tmp_path / ".env").write_text("ARCHIVER_CONCURENCY=4\n")
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert "ARCHIVER_SOURCE__KNID (environment)" in r.err
    assert "did you mean ARCHIVER_SOURCE__KIND?" in r.err
    assert "ARCHIVER_CONCURENCY (.env)" in r.err
    assert lines[-1].startswith(
        "archiver: settings: configuration error: ARCHIVER_SOURCE__KIND: required"
    )
    assert "Traceback" not in r.err


async def test_an_s3_url_with_one_slash_is_refused(tmp_path: Path) -> None:
    env = cli_env({"ARCHIVER_STORAGE__URL": "s3:/bucket"})
    for command in (("verify",), ("search",), ("check",)):
        r = await run_cli(*command, env=env, cwd=tmp_path)
        assert r.code == 2, (command, r.out, r.err)
        assert r.err.count("\n") == 1, r.err
        assert "ARCHIVER_STORAGE__URL: must be s3://bucket[/prefix]" in r.err
    assert files_under(tmp_path) == []


# -- read-only commands in the wrong place ---------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("search", "--phone", "0901234567"), "no archive in "),
        (("get", "some-call", "-o", "call.wav"), "no archive in "),
        (("get", "some-call", "--url"), "no archive in "),
        (("verify",), "no archive in "),
        (("reindex",), "no archive in "),
        (("audit", "--format", "json"), "no archive in "),
        (("status",), "no state database at "),
        (("retry",), "no state database at "),
    ],
)
async def test_read_only_commands_in_an_empty_directory_create_nothing(
    tmp_path: Path, argv: tuple[str, ...], message: str
) -> None:
    r = await run_cli(*argv, env=cli_env(), cwd=tmp_path)
    assert r.code == 2, (r.out, r.err)
    assert r.err.count("\n") == 1, r.err
    assert message in r.err
    assert "ARCHIVER_STORAGE__URL" in r.err or "ARCHIVER_STATE__URL" in r.err
    assert files_under(tmp_path) == []


async def archive_some(sim: Simulator, tmp_path: Path) -> dict[str, str]:
    """Backfill the simulator's calls into ``tmp_path/archive``; the CLI's environment."""
    env = archiver_env(tmp_path, sim=sim, tuning=QUICK)
    r = await run_cli("backfill", "--since", SINCE, "--until", UNTIL, env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    return env


async def test_status_names_the_state_and_storage_it_reads(sim: Simulator, tmp_path: Path) -> None:
    env = await archive_some(sim, tmp_path)
    r = await run_cli("status", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    assert f"state:   {tmp_path / 'state.sqlite3'}" in r.out
    assert f"storage: {tmp_path / 'archive'}" in r.out


async def test_get_does_not_overwrite_a_file_unless_forced(sim: Simulator, tmp_path: Path) -> None:
    env = await archive_some(sim, tmp_path)
    call = next(c for c in sim.calls if c.has_recording)
    precious = tmp_path / "precious.wav"
    precious.write_bytes(b"not to be lost")
    r = await run_cli("get", call.sip_call_id, "-o", str(precious), env=env, cwd=tmp_path)
    assert r.code == 2, (r.out, r.err)
    assert r.err.count("\n") == 1, r.err
    assert f"{precious} already exists (--force replaces it)" in r.err
    assert precious.read_bytes() == b"not to be lost"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    r = await run_cli(
        "get", call.sip_call_id, "-o", str(precious), "--force", env=env, cwd=tmp_path
    )
    assert r.code == 0, r.err
    assert hashlib.sha256(precious.read_bytes()).hexdigest() == call.sha256()


# -- numeric directions ------------------------------------------------------------------------


def manifest_lines(root: Path) -> list[dict[str, object]]:
    """Every line of a local archive's manifest."""
    return [
        json.loads(line)
        for path in sorted((root / "manifests").rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


@pytest.mark.sim(seed=3, calls=30, recording_fraction=1.0, max_size=40_000)
async def test_numeric_directions_are_searchable_by_code_and_by_meaning(
    sim: Simulator, tmp_path: Path
) -> None:
    env = await archive_some(sim, tmp_path)
    lines = manifest_lines(tmp_path / "archive")
    coded = {
        str(x["sip_call_id"]) for x in lines if not x["direction"] and x["direction_raw"] == "2"
    }
    named = {str(x["sip_call_id"]) for x in lines if x["direction"] == "outbound"}
    assert coded, "the simulator sends some directions as numbers"
    assert named

    async def search(*argv: str, **extra: str) -> tuple[set[str], str, str]:
        r = await run_cli("search", *argv, env=env | extra, cwd=tmp_path)
        assert r.code == 0, r.err
        if "--format" in argv:
            return {row["sip_call_id"] for row in json.loads(r.out)}, r.out, r.err
        return set(), r.out, r.err

    found, _, _ = await search("--direction", "2", "--format", "json")
    assert found == coded
    found, _, err = await search("--direction", "outbound", "--format", "json")
    assert found == named
    assert f"2 ({len(coded)} call(s))" in err
    assert "ARCHIVER_SOURCE__DIRECTION_CODES" in err
    codes = {"ARCHIVER_SOURCE__DIRECTION_CODES": "1=inbound,2=outbound,3=local"}
    found, _, err = await search("--direction", "outbound", "--format", "json", **codes)
    assert found == named | coded
    assert err == ""
    _, table, _ = await search("--direction", "2")
    assert table.count("code 2") == len(coded)
    _, table, _ = await search("--direction", "2", **codes)
    assert table.count("outbound (2)") == len(coded)


# -- the audit trail -----------------------------------------------------------------------


async def test_audit_reads_the_trail_filtered(sim: Simulator, tmp_path: Path) -> None:
    env = await archive_some(sim, tmp_path)
    call = next(c for c in sim.calls if c.has_recording)
    alice = env | {"ARCHIVER_OPERATOR": "Alice"}
    r = await run_cli("get", call.sip_call_id, "-o", "call.wav", env=alice, cwd=tmp_path)
    assert r.code == 0, r.err
    r = await run_cli("search", "--phone", call.from_number, env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    r = await run_cli("get", "no-such-call", "--url", env=env, cwd=tmp_path)
    assert r.code == 4, r.err

    async def audit(*argv: str) -> list[dict[str, object]]:
        r = await run_cli("audit", "--format", "json", *argv, env=env, cwd=tmp_path)
        assert r.code == 0, r.err
        return list(json.loads(r.out))

    everything = await audit()
    assert [(x["action"], x["result"]) for x in everything] == [
        ("get", "ok"),
        ("search", "ok"),
        ("url", "not_found"),
    ]
    [got] = await audit("--operator", "alice")
    assert got["target"]["sip_call_id"] == call.sip_call_id  # type: ignore[index]
    assert [x["action"] for x in await audit("--action", "url")] == ["url"]
    assert await audit("--since", "2021-01-01", "--until", "2021-01-02") == []
    assert len(await audit("--since", "2020-01-01")) == 3
    r = await run_cli("audit", "--format", "csv", env=env, cwd=tmp_path)
    assert r.out.splitlines()[0] == "at,operator,action,result,target,details,os_user"
    assert len(r.out.splitlines()) == 4
    r = await run_cli("audit", env=env, cwd=tmp_path)
    assert "3 record(s)" in r.out
    assert call.sip_call_id in r.out


# -- the demo ------------------------------------------------------------------------------


def venv_script() -> Path:
    """The ``archiver`` console script installed beside this Python (the README's install)."""
    script = Path(sys.executable).parent / "archiver"
    assert script.is_file(), f"no console script at {script}: pip install -e . first"
    return script


async def test_the_demo_hints_work_verbatim_after_the_readme_install(tmp_path: Path) -> None:
    # As the README installs it: ./.venv/bin/archiver, run from the clone's directory.
    (tmp_path / ".venv").symlink_to(venv_script().parent.parent, target_is_directory=True)
    env = cli_env()
    proc = await asyncio.create_subprocess_exec(
        ".venv/bin/archiver",
        "demo",
        "--calls",
        "8",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    # Human output: no JSON log lines, even with stderr not a terminal.
    assert not [line for line in err.decode().splitlines() if line.startswith("{")], err
    hints = [line.split(":", 1)[1].strip() for line in out.decode().splitlines() if ":  " in line]
    assert len(hints) == 4, out.decode()
    assert all(".venv/bin/archiver " in hint for hint in hints), hints
    for hint in hints:
        r = await asyncio.create_subprocess_shell(
            hint,
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        hint_out, hint_err = await asyncio.wait_for(r.communicate(), 60)
        assert r.returncode == 0, (hint, hint_out.decode(), hint_err.decode())
    assert (tmp_path / "call.wav").is_file() or list(tmp_path.glob("call.*"))


async def stale_state(sim: Simulator, tmp_path: Path, path: Path) -> None:
    """A state whose recordings wait on a simulator that is gone (as an interrupted demo
    leaves it): every recording 404s 'not ready' and the backfill gives up waiting."""
    env = archiver_env(
        tmp_path,
        sim=sim,
        tuning=QUICK,
        ARCHIVER_STATE__URL=str(path),
        ARCHIVER_BACKFILL_MAX_WAIT="0",
        ARCHIVER_RETRY__NOT_READY_INITIAL="3600",
    )
    since, until = "2021-02-17 08:00", "2021-02-17 14:01"
    r = await run_cli("backfill", "--since", since, "--until", until, env=env, cwd=tmp_path)
    assert r.code == 3, (r.out, r.err)


@pytest.mark.sim(seed=1, calls=8, faults=Faults(not_ready_fraction=1.0, not_ready_seconds=1e6))
async def test_the_demo_recovers_from_an_earlier_demo_and_leaves_the_users_state_alone(
    sim: Simulator, tmp_path: Path
) -> None:
    await stale_state(sim, tmp_path, tmp_path / "archiver-demo-state.sqlite3")
    await stale_state(sim, tmp_path, tmp_path / "archiver-state.sqlite3")
    users_state = (tmp_path / "archiver-state.sqlite3").read_bytes()
    r = await run_cli("demo", "--calls", "8", env=cli_env(), cwd=tmp_path, timeout=90)
    assert r.code == 0, (r.out, r.err)
    assert (tmp_path / "archiver-state.sqlite3").read_bytes() == users_state


async def test_a_demo_into_an_unwritable_storage_stops_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    env = cli_env({"ARCHIVER_STORAGE__URL": str(tmp_path / "a-file" / "archive")})
    r = await run_cli("demo", "--calls", "4", env=env, cwd=tmp_path, timeout=90)
    assert r.code == 1, (r.out, r.err)
    assert r.err.count("\n") == 1, r.err
    assert r.err.startswith("archiver: ")
    assert "archived" not in r.out


# -- a port in use ---------------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


async def test_run_on_a_port_in_use_is_one_line(
    sim: Simulator, tmp_path: Path, taken_port: int
) -> None:
    env = archiver_env(tmp_path, sim=sim, ARCHIVER_SERVICE__PORT=str(taken_port))
    r = await run_cli("run", env=env, cwd=tmp_path, timeout=60)
    assert r.code == 2, (r.out, r.err)
    assert r.err.count("\n") == 1, r.err
    assert f"cannot listen on 127.0.0.1:{taken_port}: Address already in use" in r.err
    assert "ARCHIVER_SERVICE__PORT" in r.err


async def test_simulate_on_a_port_in_use_is_one_line(tmp_path: Path, taken_port: int) -> None:
    r = await run_cli("simulate", "--port", str(taken_port), env=cli_env(), cwd=tmp_path)
    assert r.code == 2, (r.out, r.err)
    assert r.err.count("\n") == 1, r.err
    assert f"cannot listen on 127.0.0.1:{taken_port}: Address already in use" in r.err


# -- check: every problem, in one pass --------------------------------------------------------


async def test_check_reports_a_silent_source_and_a_bad_storage_together(
    tmp_path: Path, taken_port: int
) -> None:
    # The port listens but never answers: only a timeout ends the source's check.
    (tmp_path / "a-file").write_text("not a directory")
    env = archiver_env(
        tmp_path,
        base=f"http://127.0.0.1:{taken_port}",
        ARCHIVER_STORAGE__URL=str(tmp_path / "a-file" / "archive"),
    )
    r = await run_cli("check", env=env, cwd=tmp_path, timeout=60)
    assert r.code == 1, (r.out, r.err)
    # One line per part, each naming its part.
    assert r.err.splitlines() == [
        "archiver: source: did not answer within 15 s",
        f"archiver: storage: {tmp_path / 'a-file' / 'archive'}: cannot be created: "
        f"{tmp_path / 'a-file'} is not a directory",
    ]
    assert "settings: OK" in r.out
    assert f"state: OK: {tmp_path / 'state.sqlite3'} (created by" in r.out
    assert not (tmp_path / "state.sqlite3").exists()


async def test_check_reports_bad_settings_with_a_bad_storage(
    sim: Simulator, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    env = archiver_env(tmp_path, sim=sim, ARCHIVER_STORAGE__URL=str(tmp_path / "a-file" / "x"))
    del env["ARCHIVER_SOURCE__TOKEN"]
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 2, (r.out, r.err)
    settings_line, storage_line = r.err.splitlines()
    assert settings_line.startswith("archiver: settings: configuration error: ")
    assert "ARCHIVER_SOURCE__TOKEN: required" in settings_line
    assert storage_line.startswith(f"archiver: storage: {tmp_path / 'a-file' / 'x'}: ")
    assert "settings: OK" not in r.out


# -- run says what each poll did ----------------------------------------------------------------


async def test_run_logs_a_line_per_poll(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    sim = Simulator(
        SimConfig(
            seed=2,
            calls=4,
            start=now - timedelta(minutes=30),
            span=timedelta(minutes=20),
            max_size=40_000,
        )
    )
    async with sim.serve():
        env = archiver_env(
            tmp_path,
            sim=sim,
            tuning={**QUICK, **DAEMON},
            ARCHIVER_POLL_INTERVAL="0.5",
            ARCHIVER_SERVICE__ENABLED="false",
        )
        proc = await start_cli("run", env=env, cwd=tmp_path)
        assert proc.stderr is not None
        polls: list[str] = []
        try:
            while len(polls) < 2:
                line = await asyncio.wait_for(proc.stderr.readline(), 60)
                assert line, "run ended before two polls"
                message = json.loads(line)["message"]
                if message.startswith("poll: "):
                    polls.append(message)
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)
    assert proc.returncode == 0
    assert "listed 4" in polls[0], polls
