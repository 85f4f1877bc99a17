"""The console says a disposed recording was disposed of, and when and why (issue 27).

A local archive of six calls, all disposed of by ``archiver dispose`` (a one-day
default rule in the rules file: the calls are of 2021); the console, a real aiohttp server on
loopback, refuses to play one (409) and its page says "disposed on D under rule R".
"""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import cli_env, run_cli
from tests.support.console import audit_records, first_call_id, running_console, signed_in


async def test_a_disposed_call_says_so(local_archive, tmp_path):
    (tmp_path / "rules.toml").write_text("default_days = 1\n")
    env = cli_env(
        {
            "ARCHIVER_STORAGE__URL": local_archive.url,
            "ARCHIVER_RETENTION__RULES_FILE": str(tmp_path / "rules.toml"),
        }
    )
    done = await run_cli("dispose", "--approved-by", "Officer B", env=env, cwd=tmp_path)
    assert done.code == 0, done.err
    assert "disposed of 6 recording(s)" in done.out
    workdir = tmp_path / "console"
    workdir.mkdir()
    async with running_console(local_archive, workdir) as console:
        async with signed_in(console.url, "listener") as http:
            call_id = await first_call_id(http)
            data = {"csrf": http.csrf, "reason": "complaint 27"}
            async with http.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 409, await resp.text()
                error = (await resp.json())["error"]
            async with http.get(f"/calls/{call_id}") as resp:
                page = await resp.text()
        plays = [r for r in await audit_records(console.store) if r["action"] == "play"]
    assert "disposed on" in error
    assert "under rule default (retention, approved by Officer B)" in error
    assert "DISPOSED" in page
    assert [r["result"] for r in plays] == ["refused"]
    assert not list(Path(local_archive.url).rglob("*.wav"))
