"""The first hour with the archiver (issue 12), as a new user meets it: the CLI as a
subprocess, from an empty working directory."""

from __future__ import annotations

from pathlib import Path

from archiver.simulator import Simulator
from tests.support.cli import archiver_env, cli_env, run_cli


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
