"""The first hour with the archiver (issue 12), as a new user meets it: the CLI as a
subprocess, from an empty working directory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from archiver.simulator import Simulator
from tests.support.cli import QUICK, archiver_env, cli_env, run_cli

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
    assert lines[-1].startswith("archiver: configuration error: ARCHIVER_SOURCE__KIND: required")
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
