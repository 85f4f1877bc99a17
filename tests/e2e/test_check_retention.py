"""``archiver check`` reads the retention rules file (ARCHIVER_RETENTION__RULES_FILE) as
``dispose`` and ``run`` do: a good one is counted, a bad one is a one-line settings error,
exit 2, found before the first disposition (issue 27)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import archiver_env, run_cli

GOOD = """
default_days = 730

[[rule]]
name = "complaints"
days = 3650
direction = "inbound"

[[rule]]
name = "sales"
days = 365
extension = ["101", "102"]
"""


async def test_check_counts_the_rules_and_names_the_default(sim, tmp_path):
    (tmp_path / "rules.toml").write_text(GOOD)
    env = archiver_env(
        tmp_path, sim=sim, ARCHIVER_RETENTION__RULES_FILE=str(tmp_path / "rules.toml")
    )
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 0, r.err
    assert f"retention: OK: 2 rule(s) from {tmp_path / 'rules.toml'}, default rule 730 day(s)" in (
        r.out
    )


async def test_check_without_a_rules_file_says_what_applies(sim, tmp_path):
    r = await run_cli("check", env=archiver_env(tmp_path, sim=sim), cwd=tmp_path)
    assert r.code == 0, r.err
    assert "retention: OK: 0 rule(s) (ARCHIVER_RETENTION__RULES_FILE unset), no default rule" in (
        r.out
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rules.toml", "not toml at all", "not TOML"),
        ("rules.json", '{"rule": [', "not JSON"),
        ("rules.toml", "[[rule]]\nname = 'x'\n", "days must be"),
        ("rules.toml", "[[rule]]\nname = 'x'\ndays = 1\ncolour = 'red'\n", "unknown field"),
        ("rules.toml", b"name = '\xff'\n", "not UTF-8"),
        ("rules.toml", "# " + "x" * 300_000 + "\n", "larger than"),
        ("absent.toml", None, "No such file"),
    ],
)
async def test_a_bad_rules_file_is_one_line_and_exit_2(sim, tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    env = archiver_env(tmp_path, sim=sim, ARCHIVER_RETENTION__RULES_FILE=str(path))
    r = await run_cli("check", env=env, cwd=tmp_path)
    assert r.code == 2, r.out + r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("archiver: retention: configuration error:"), lines[0]
    assert message in lines[0]
    assert "Traceback" not in r.err
    # The other parts were still checked: the report is whole.
    assert "storage: OK" in r.out
    assert not Path(tmp_path / "archive").exists() or not any(
        p.is_file() for p in (tmp_path / "archive").rglob("*")
    )
