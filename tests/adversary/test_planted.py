"""Planted history, on all four storages: a legacy-format manifest object no seal recorded
(OUT-OF-CHAIN), a whole new writer's chain no witness key registered (UNREGISTERED-WRITER),
and a seal that refuses legacy objects appearing after the archive was sealed."""

from __future__ import annotations

import hashlib
import json

from archiver.manifest.chain import Head, next_link
from archiver.settings import StorageSettings
from archiver.storage import open_store
from archiver.storage.layout import head_key
from tests.adversary.conftest import Target
from tests.adversary.insider import insider
from tests.support.cli import cli_env, run_cli

AUDIO = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 40


def _legacy_line(object_key: str) -> bytes:
    """A line of the format before proof was recorded: no etag, no checksum."""
    line = {
        "sip_call_id": "planted-1",
        "cdr_id": "planted-cdr-1",
        "provider": "cdr_v2",
        "object_key": object_key,
        "sha256": hashlib.sha256(AUDIO).hexdigest(),
        "size": len(AUDIO),
        "content_type": "audio/mpeg",
        "call_started_at": "2021-02-17T09:00:00+07:00",
        "archived_at": "2021-02-17T02:30:00Z",
    }
    return (json.dumps(line) + "\n").encode()


async def test_a_planted_legacy_manifest_object_is_out_of_chain(target: Target, seaweed):
    planted = "manifests/date=2021-02-17/000000000001-run0123456789.jsonl"
    async with insider(target, seaweed) as ins:
        key = "recordings/2021/02/17/planted-1.mp3"
        await ins.put(key, AUDIO)
        await ins.put(planted, _legacy_line(ins.store.full_key(key)))
    check = await target.verify()
    assert check.code == 5, check.out + check.err
    assert f"OUT-OF-CHAIN {planted}: a legacy-format manifest object" in check.out


async def test_an_unregistered_writer_is_reported(target: Target, seaweed):
    await target.make_witness()
    forged = "w00000000forged0"
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        real = await ins.link(writer, 1)
        content = await ins.get(real.manifest_key)
        key = real.manifest_key.replace(f"-{writer}.jsonl", f"-{forged}.jsonl")
        await ins.put(key, content)
        link = next_link(forged, 1, key, content, real.lines, None)
        await ins.put(link.key, link.to_bytes())
        await ins.put(head_key(forged), Head.of(link.to_bytes()).to_bytes())
    check = await target.verify(witness=True)
    assert check.code == 5, check.out + check.err
    assert f"UNREGISTERED-WRITER {head_key(forged)}: writer {forged} was never registered" in (
        check.out
    )
    assert "writers registered 1/2" in check.out
    if target.kind == "local":
        # Without a witness key, a planted writer is a limit verify names.
        blind = await target.verify()
        assert "not covered:" in blind.out
        assert "P (writers' registrations not checked: --witness-key)" in blind.out


async def test_a_seal_refuses_legacy_objects_planted_after_the_archive_was_sealed(tmp_path):
    settings = StorageSettings(url=str(tmp_path / "archive"))
    async with open_store(settings) as store:  # an archive written before the chain
        for n in (1, 2):
            key = f"recordings/2021/02/17/old-{n}.mp3"
            await store.put_bytes(
                key, AUDIO, sha256=hashlib.sha256(AUDIO).hexdigest(), content_type="audio/mpeg"
            )
            line = _legacy_line(key)
            manifest = f"manifests/date=2021-02-17/{n:012d}-run0000000000.jsonl"
            await store.put_bytes(
                manifest, line, sha256=hashlib.sha256(line).hexdigest(), content_type="x"
            )
    env = cli_env({"ARCHIVER_STORAGE__URL": settings.url})
    first = await run_cli("seal", env=env, cwd=tmp_path)
    assert first.code == 0, first.out + first.err
    planted = "manifests/date=2021-02-18/000000000009-run0123456789.jsonl"
    path = tmp_path / "archive" / planted
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_legacy_line("recordings/2021/02/18/planted-1.mp3"))
    again = await run_cli("seal", env=env, cwd=tmp_path)
    assert again.code == 5, again.out + again.err
    assert f"OUT-OF-CHAIN {planted}: a legacy-format manifest object that appeared after" in (
        again.out
    )
    check = await run_cli("verify", env=env, cwd=tmp_path)
    assert check.code == 5
    assert f"OUT-OF-CHAIN {planted}" in check.out
