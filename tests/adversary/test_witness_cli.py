"""The witness commands as the auditor runs them: keygen, register, checkpoint into a
folder and into a second bucket under Object Lock; verify with and without them; a
checkpoint refused for a rewritten chain or an unregistered writer; bad keys and places."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.adversary.conftest import Target, make_target
from tests.adversary.insider import insider


# The commands on a folder; a place in a second bucket is what test_witnessed uses (the
# same write_checkpoint and read_checkpoints), so the CLI's walk is not repeated on S3.
@pytest.fixture
async def archive(tmp_path, seaweed, make_bucket, s3_settings) -> Target:
    return await make_target("local", tmp_path, seaweed, make_bucket, s3_settings)


async def _keygen(target: Target) -> str:
    target.key.parent.mkdir(mode=0o700)
    made = await target.cli(
        "witness", "keygen", "--name", "audit.example/calls", "--out", str(target.key)
    )
    assert made.code == 0, made.err
    assert stat.S_IMODE(os.stat(target.key).st_mode) == 0o600
    vkey = target.key.with_name("witness.key.pub").read_text().strip()
    assert vkey in made.out
    secret = target.key.read_text().strip().split("+", 4)[-1]  # PRIVATE+KEY+name+id+key
    assert len(secret) > 40
    assert secret not in made.out
    return vkey


async def test_keygen_register_checkpoint_and_verify(archive: Target, seaweed):
    target = archive
    target.vkey = await _keygen(target)
    # The writer is not registered yet: the witness refuses to cosign.
    refused = await target.checkpoint_cli()
    assert refused.code == 5, refused.out + refused.err
    assert "UNREGISTERED-WRITER" in refused.out
    assert "nothing was signed" in refused.out
    registered = await target.cli("witness", "register", "--key", str(target.key))
    assert registered.code == 0, registered.out + registered.err
    assert registered.out.startswith("registered: writer w")
    again = await target.cli("witness", "register", "--key", str(target.key))
    assert again.out.startswith("already registered: writer w")
    first = await target.checkpoint_cli()
    assert first.code == 0, first.out + first.err
    assert "extending 0 earlier checkpoint(s)" in first.out
    check = await target.verify(witness=True)
    assert check.code == 0, check.out + check.err
    assert "WITNESS 1 checkpoint(s) from 1 place(s)" in check.out
    assert "writers registered 1/1" in check.out
    assert "threat-model rows covered: R, W (up to 20" in check.out
    # A rewrite: the witness now refuses to cosign, and keeps nothing new.
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        await ins.consistent_rewrite(writer, 1)
    kept = await _kept(target)
    refused = await target.checkpoint_cli()
    assert refused.code == 5, refused.out
    assert "CHAIN-REWRITTEN" in refused.out
    assert "nothing was signed" in refused.out
    assert await _kept(target) == kept


async def _kept(target: Target) -> list[str]:
    if target.kind == "local":
        return sorted(p.name for p in Path(target.witness_place).iterdir())
    from archiver.storage import open_store
    from archiver.witness.place import _settings

    async with open_store(_settings(target.witness_place, target.storage)) as store:
        return sorted([o.key async for o in store.list("")])


async def test_bad_keys_and_places_are_one_line_errors(tmp_path, seaweed, make_bucket, s3_settings):
    target = await make_target("local", tmp_path, seaweed, make_bucket, s3_settings)
    target.vkey = await _keygen(target)
    again = await target.cli("witness", "keygen", "--name", "x", "--out", str(target.key))
    assert again.code == 2
    assert "exists already" in again.err
    bad = tmp_path / "bad.key"
    bad.write_text("PRIVATE+KEY+x+00000000+AAAA\n")
    bad.chmod(0o600)
    shared = tmp_path / "shared.key"
    shared.write_text(target.key.read_text())
    shared.chmod(0o644)
    for args, message in [
        (["witness", "register", "--key", str(bad)], "not an Ed25519 witness key"),
        (["witness", "register", "--key", str(tmp_path / "none")], "cannot read it"),
        (["witness", "register", "--key", str(shared)], "readable or writable by others"),
        (["verify", "--witness", str(tmp_path)], "give the witness's verifier key"),
        (["verify", "--witness-key", "not-a-key"], "--witness-key not-a-key"),
        (["verify", "--witness", str(tmp_path / "nowhere"), "--witness-key", target.vkey],
         "no such file or folder"),
        (["witness", "keygen", "--name", "a b", "--out", str(tmp_path / "k2")], "--name"),
    ]:  # fmt: skip
        result = await target.cli(*args)
        assert result.code == 2, (args, result.out, result.err)
        assert message in result.err, (args, result.err)
        assert "Traceback" not in result.err
        assert "PRIVATE+KEY" not in result.err


async def test_a_forged_checkpoint_in_the_witness_place_is_reported(
    tmp_path, seaweed, make_bucket, s3_settings
):
    target = await make_target("local", tmp_path, seaweed, make_bucket, s3_settings)
    await target.make_witness()
    (kept,) = Path(target.witness_place).iterdir()
    lines = kept.read_text().split("\n")
    lines[1] = "999"  # the size line: the cosignature no longer matches the text
    forged = "\n".join(lines)
    (Path(target.witness_place) / "checkpoint-999999999999-000000000001.note").write_text(forged)
    check = await target.verify(witness=True)
    assert check.code == 5, check.out
    assert "WITNESS " in check.out
    assert "not a trusted checkpoint" in check.out
    assert "does not verify" in check.out
