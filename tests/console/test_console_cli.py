"""``archiver console-user`` and ``archiver console`` as commands: accounts, bad input, start."""

from __future__ import annotations

import asyncio
import signal
import urllib.request

from tests.support.cli import cli_env, local_storage_env, run_cli, start_cli
from tests.support.console import console_user
from tests.support.seaweed import free_ports


async def _user(env, cwd, *args: str, password: str | None = None):
    result = await console_user(env, cwd, *args, password=password or "")
    return result.code, result.out, result.err


async def test_accounts_are_added_listed_and_removed(tmp_path):
    users = tmp_path / "users"
    env = cli_env({"ARCHIVER_CONSOLE__USERS_FILE": str(users)})
    code, out, _ = await _user(
        env,
        tmp_path,
        "add",
        "ana",
        "--role",
        "officer",
        "--password-stdin",
        password="long enough pw",
    )
    assert code == 0
    code, out, _ = await _user(
        env, tmp_path, "add", "proxy.bob@corp.vn", "--role", "listener", "--no-password"
    )
    assert code == 0
    assert users.stat().st_mode & 0o777 == 0o600
    text = users.read_text()
    assert "long enough pw" not in text
    assert "ana:officer:$argon2id$" in text
    code, out, _ = await _user(env, tmp_path, "list")
    assert out.splitlines() == ["ana\tofficer\tpassword", "proxy.bob@corp.vn\tlistener\tproxy only"]
    code, out, _ = await _user(env, tmp_path, "remove", "ana")
    assert code == 0
    assert "ana:" not in users.read_text()


async def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path):
    users = tmp_path / "users"
    env = cli_env({"ARCHIVER_CONSOLE__USERS_FILE": str(users)})
    for args, password, message in [
        (("add", "../root", "--password-stdin"), "long enough pw", "user name '../root'"),
        (("add", "ana", "--password-stdin"), "short", "at least 8 characters"),
        (("add", "ana", "--role", "root", "--password-stdin"), "long enough pw", "invalid choice"),
        (("remove", "nobody"), None, "no such user: nobody"),
        (("add",), None, "NAME is required"),
    ]:
        code, out, err = await _user(env, tmp_path, *args, password=password)
        assert code == 2, args
        assert message in err
        assert len(err.strip().splitlines()) == 1, err
        assert not users.exists()
    users.write_text("ana:officer\n")
    code, _, err = await _user(env, tmp_path, "list")
    assert code == 2
    assert "line 1: not name:role:hash" in err


async def test_the_console_refuses_bad_settings_and_serves_until_stopped(tmp_path, local_archive):
    archive = local_archive.local_path
    (tmp_path / "elsewhere").mkdir()
    env = cli_env(
        local_storage_env(archive)
        | {"ARCHIVER_CONSOLE__PROXY_ADDRESSES": "10.0.0.0/8, proxy.local"}
    )
    bad = await run_cli("console", env=env, cwd=tmp_path)
    assert bad.code == 2
    assert "ARCHIVER_CONSOLE__PROXY_ADDRESSES: " in bad.err
    assert "'proxy.local' is not an IP address" in bad.err
    (port,) = free_ports(1)
    env = cli_env(local_storage_env(archive) | {"ARCHIVER_CONSOLE__PORT": str(port)})
    proc = await start_cli("console", env=env, cwd=tmp_path)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert f"serving on http://127.0.0.1:{port}/" in line.decode()
        taken = await run_cli("console", env=env, cwd=tmp_path / "elsewhere")
        assert taken.code == 2
        # (It indexes the archive first, in a folder of its own: a log line, then the error.)
        assert [ln for ln in taken.err.splitlines() if not ln.startswith("{")] == [
            f"archiver: configuration error: cannot listen on 127.0.0.1:{port}: "
            "Address already in use (set ARCHIVER_CONSOLE__HOST/ARCHIVER_CONSOLE__PORT)"
        ]

        def fetch() -> tuple[int, str]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as resp:  # noqa: S310
                return resp.status, resp.read().decode()

        status, page = await asyncio.to_thread(fetch)
        assert status == 200
        assert 'id="login-form"' in page
        assert (tmp_path / "archiver-console.sqlite3").exists()  # the default index file
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0
