"""A session lasts only as long as its account does (real HTTP on loopback).

The users file is read again when it changes: an account removed or given
another role ends its sessions at their next request, not when they expire.
"""

from __future__ import annotations

from archiver.console.auth import Account, Role, read_accounts, write_accounts
from tests.support.console import first_call_id, running_console, signed_in


async def test_a_demoted_or_removed_user_is_signed_out(local_archive, tmp_path):
    async with running_console(local_archive, tmp_path) as console:
        users = console.console.settings.users_file
        async with signed_in(console.url, "listener") as listener:
            call_id = await first_call_id(listener)
            async with signed_in(console.url, "exporter") as exporter:
                async with signed_in(console.url, "viewer") as viewer:
                    accounts = read_accounts(users)
                    demoted = Account("listener", Role.VIEWER, accounts["listener"].password_hash)
                    accounts["listener"] = demoted
                    del accounts["exporter"]
                    write_accounts(users, accounts)

                    data = {"csrf": listener.csrf, "reason": "case 17 review"}
                    async with listener.post(f"/calls/{call_id}/play", data=data) as resp:
                        assert resp.status == 401  # the listener's session is over
                    async with listener.get("/", allow_redirects=False) as resp:
                        assert resp.status == 303
                        assert resp.headers["Location"] == "/login"
                    async with exporter.get(f"/calls/{call_id}", allow_redirects=False) as resp:
                        assert resp.status == 303
                        assert resp.headers["Location"] == "/login"
                    async with viewer.get(f"/calls/{call_id}", allow_redirects=False) as resp:
                        assert resp.status == 200  # an unchanged account is not touched
        # Signed in again, the demoted user has the new role's rights only.
        async with signed_in(console.url, "listener") as listener:
            data = {"csrf": listener.csrf, "reason": "case 17 review"}
            async with listener.post(f"/calls/{call_id}/play", data=data) as resp:
                assert resp.status == 403
