"""``archiver console`` from the same image: accounts made with ``console-user`` in the
image, the index on its volume, signed in over HTTP, the archive's calls found."""

from __future__ import annotations

import re

import aiohttp

from archiver.simulator import SimConfig, Simulator
from tests.container.support import check, compose_health, http_get, wait_for
from tests.support.cli import s3_storage_env
from tests.support.pipeline import backfill, make_settings
from tests.support.podman import (
    podman,
    run_command,
    stop_command,
    wait_command,
    write_env_file,
)
from tests.support.seaweed import free_ports

PASSWORD = "correct horse battery"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


async def test_the_console_runs_from_the_image(
    image, containers, tmp_path, seaweed, s3_env, s3_settings, make_bucket
):
    storage = s3_settings(await make_bucket(), "archive")
    sim = Simulator(SimConfig(seed=9, calls=4, recording_fraction=1.0, max_size=120_000))
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(tmp_path / "state.sqlite3"))
        await backfill(settings, sim)
    [port] = free_ports(1)
    env_file = write_env_file(
        tmp_path / "console.env",
        {
            **s3_storage_env(storage, seaweed),
            "ARCHIVER_CONSOLE__PORT": str(port),
            # Plain HTTP on loopback in this test; behind TLS in production.
            "ARCHIVER_CONSOLE__COOKIE_SECURE": "false",
        },
    )
    volume = await containers.volume("console")
    add_user = run_command(
        "unused",
        image,
        env_file=env_file,
        volume=volume,
        args=["console-user", "add", "auditor", "--role", "listener", "--password-stdin"],
        detach=False,
    )
    check(await podman(*add_user, stdin=PASSWORD.encode() + b"\n"), "console-user add")

    name = containers.container("console")
    check(
        await podman(*run_command(name, image, env_file=env_file, volume=volume, args=["console"])),
        "podman run console",
    )
    url = f"http://127.0.0.1:{port}"

    async def serving() -> bool:
        return (await http_get(f"{url}/login"))[0] == 200

    await wait_for(serving, 90, "the console's sign-in page", logs_of=name)
    # docker/compose.yaml's health check of its console service, in this container.
    check(await podman("podman", "exec", name, *compose_health("console")), "compose's check")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(url, cookie_jar=jar) as http:
        async with http.get("/login") as resp:
            form = {"user": "auditor", "password": PASSWORD, "csrf": _csrf(await resp.text())}
        async with http.post("/login", data=form, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()

        async def indexed() -> bool:
            async with http.get("/", params={"go": "1"}) as resp:
                return resp.status == 200 and 'data-id="' in await resp.text()

        await wait_for(indexed, 60, "the archive's calls in the console", logs_of=name)
        async with http.get("/", params={"go": "1"}) as resp:
            html = await resp.text()
        assert all(c.sip_call_id in html for c in sim.calls if c.has_recording)
    check(await podman(*stop_command(name)), "podman stop")
    assert check(await podman(*wait_command(name)), "podman wait").out.strip() == "0"
