"""The console's SQLite index over a real archive: incremental, deduplicated, rebuildable."""

from __future__ import annotations

import json
from pathlib import Path

from archiver.console.index import CallIndex, CallQuery
from archiver.console.tables import SCHEMA
from archiver.index_db import IndexDatabase
from archiver.retrieval.search import phone_key
from archiver.storage import open_store
from tests.support.console import manifest_calls


def _manifests(root: Path) -> list[Path]:
    return sorted((root / "manifests").rglob("*.jsonl"))


async def test_updates_read_only_new_manifests_and_rebuild_gives_the_same(local_archive, tmp_path):
    root = Path(local_archive.local_path)
    async with open_store(local_archive) as store:
        calls = await manifest_calls(store)
        index = CallIndex(IndexDatabase(tmp_path / "index.sqlite3", SCHEMA))
        first = await index.refresh(store)
        assert (first.manifests, first.lines) == (len(_manifests(root)), len(calls))
        assert await index.count() == len(calls)
        again = await index.refresh(store)
        assert (again.manifests, again.lines) == (0, 0)

        # A new manifest object: two new calls, one line of an old one (listed twice),
        # and one damaged line.
        template = json.loads(_manifests(root)[0].read_text().splitlines()[0])
        new = [
            {**template, "cdr_id": f"new-{i}", "sip_call_id": f"new-sip-{i}", "sha256": f"{i:064x}"}
            for i in range(2)
        ]
        lines = [json.dumps(x) for x in [*new, template]] + ['{"sip_call_id": "half a line']
        (root / "manifests/date=2021-02-18").mkdir()
        (root / "manifests/date=2021-02-18/000000000099-late.jsonl").write_text("\n".join(lines))
        update = await index.refresh(store)
        assert (update.manifests, update.lines, update.bad_lines) == (1, 3, 1)
        assert await index.count() == len(calls) + 2
        found, total = await index.search(CallQuery(ident="new-sip-1"), 0, 10)
        assert total == 1
        assert found[0].call.cdr_id == "new-1"
        index.db.close()

        rebuilt = CallIndex(IndexDatabase.fresh(tmp_path / "index.sqlite3", SCHEMA))
        await rebuilt.refresh(store)
        assert await rebuilt.count() == len(calls) + 2
        rebuilt.db.close()


async def test_search_criteria_match_as_the_cli_does(local_archive, tmp_path):
    async with open_store(local_archive) as store:
        calls = await manifest_calls(store)
        index = CallIndex(IndexDatabase(tmp_path / "index.sqlite3", SCHEMA))
        await index.refresh(store)

        async def cdrs(**criteria) -> set[str]:
            found, total = await index.search(CallQuery(**criteria), 0, 1000)
            assert total == len(found)
            ids = [item.call.cdr_id for item in found]
            assert len(ids) == len(set(ids)), "a call listed twice"
            return set(ids)

        for call in calls:
            for field in ("from_number", "to_number"):
                number = str(call.fields.get(field) or "")
                if not number:
                    continue
                key = phone_key(number)
                expected = {
                    c.cdr_id
                    for c in calls
                    if key
                    in {phone_key(str(c.fields.get(f) or "")) for f in ("from_number", "to_number")}
                }
                spelled = "+84 " + key[1:] if key.startswith("0") and len(key) == 10 else number
                assert await cdrs(phone=spelled) == expected
            agent = str(call.fields.get("agent_name") or "")
            if agent:
                expected = {
                    c.cdr_id
                    for c in calls
                    if agent.casefold()
                    in {str(c.fields.get(f) or "").casefold() for f in ("agent", "agent_name")}
                }
                assert await cdrs(agent=agent.upper()) == expected
            assert call.cdr_id in await cdrs(ident=call.sip_call_id)
            assert await cdrs(ident=call.cdr_id) == {call.cdr_id}
        started = sorted(c.call_started_at for c in calls if c.call_started_at)
        assert await cdrs(since=started[1], until=started[-1]) == {
            c.cdr_id
            for c in calls
            if c.call_started_at and started[1] <= c.call_started_at < started[-1]
        }
        inbound = {c.cdr_id for c in calls if c.fields.get("direction") == "inbound"}
        assert await cdrs(direction="inbound") == inbound
        page, total = await index.search(CallQuery(), 0, 2)
        assert total == len(calls)
        assert [p.call.call_started_at for p in page] == sorted(started, reverse=True)[:2]
        index.db.close()
