"""The adversarial suite's archives: one small archive per test, on the four storages.

- ``local``: a directory;
- ``plain``: a SeaweedFS bucket without versioning;
- ``versioned``: a SeaweedFS bucket with versioning;
- ``locked``: a SeaweedFS bucket with Object Lock (GOVERNANCE, so the test can
  empty it; COMPLIANCE behaves the same for verify: it only forbids more).

The archive is written by the archiver itself (an in-process backfill of a
simulated provider, 6 calls in batches of 2: a chain of a few links); the
attacks are the insider's (:mod:`tests.adversary.insider`), with the
archiver's own credentials; ``verify`` and the witness commands run as the CLI.
One SeaweedFS serves the whole session (``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from archiver.retrieval.chain_audit import audit_chains
from archiver.settings import StorageSettings, TimestampSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from archiver.witness.checkpoint import Checkpoint
from archiver.witness.note import Signer, sign_note
from archiver.witness.place import checkpoint_name, write_checkpoint
from archiver.witness.registry import register_writer
from tests.support.cli import Result, cli_env, local_storage_env, run_cli, s3_storage_env
from tests.support.pipeline import backfill, make_settings
from tests.support.seaweed import SeaweedServer, admin_client
from tests.support.tsa import Pki, make_pki, serve_tsa

STORAGES = ["local", "plain", "versioned", "locked"]
VERSIONED = ["versioned", "locked"]
ORIGIN = "archive.example/calls"


@dataclass
class Target:
    """One archive under attack, and how to run the CLI on it."""

    kind: str
    storage: StorageSettings
    tmp: Path
    env: dict[str, str]
    witness_place: str  # where checkpoints are kept: out of the writer's reach
    key: Path = field(init=False)
    vkey: str = ""
    signer: Signer = field(init=False)

    def __post_init__(self) -> None:
        self.key = self.tmp / "auditor" / "witness.key"

    async def cli(self, *args: str, **extra: str) -> Result:
        """Run the archiver CLI against this archive."""
        return await run_cli(*args, env={**self.env, **extra}, cwd=self.tmp)

    async def verify(self, *args: str, witness: bool = False, **extra: str) -> Result:
        """``archiver verify``, with the witness place and key when asked."""
        more = ["--witness", self.witness_place, "--witness-key", self.vkey] if witness else []
        return await self.cli("verify", *more, *args, **extra)

    async def make_witness(self) -> None:
        """An auditor's key; every writer registered; a first checkpoint kept. In the
        test's process, with the library the commands use (``test_witness_cli`` runs
        the commands themselves)."""
        self.key.parent.mkdir(mode=0o700, exist_ok=True)
        self.signer = Signer.generate("audit.example/calls")
        self.key.write_text(self.signer.to_text() + "\n")
        self.key.chmod(0o600)
        self.vkey = self.signer.verifier.vkey()
        now = datetime.now(UTC)
        async with open_store(self.storage) as store:
            chains = await audit_chains(store)
            for writer in chains.writer_ids:
                await register_writer(store, self.signer, ORIGIN, writer, now)
        made = Checkpoint.of(ORIGIN, chains.state)
        note = sign_note(made.text(), self.signer, now)
        await write_checkpoint(self.witness_place, self.storage, checkpoint_name(made, now), note)

    async def checkpoint_cli(self) -> Result:
        """``archiver witness checkpoint`` into the witness place."""
        return await self.cli(
            "witness", "checkpoint", "--key", str(self.key), "--to", self.witness_place
        )

    async def register(self, writer: str) -> None:
        """Register one more writer with the auditor's key."""
        async with open_store(self.storage) as store:
            await register_writer(store, self.signer, ORIGIN, writer, datetime.now(UTC))


async def _bucket(seaweed: SeaweedServer, make_bucket: Any, kind: str) -> str:
    bucket = await make_bucket(object_lock=kind == "locked")
    if kind == "versioned":
        async with admin_client(seaweed) as client:
            await client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
    return bucket


async def _witness_bucket(seaweed: SeaweedServer, make_bucket: Any) -> str:
    """A second bucket under Object Lock, default retention 1 day: the auditor's."""
    bucket = await make_bucket(object_lock=True)
    async with admin_client(seaweed) as client:
        await client.put_object_lock_configuration(
            Bucket=bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
            },
        )
    return bucket


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
async def tsa(pki: Pki) -> AsyncIterator[str]:
    async with serve_tsa(pki) as (_, url):
        yield url


async def make_target(
    kind: str,
    tmp: Path,
    seaweed: SeaweedServer,
    make_bucket: Any,
    s3_settings: Any,
    *,
    stamps: tuple[Pki, str] | None = None,
) -> Target:
    """Write a small archive on storage ``kind`` (time-stamped at ``stamps``' TSA)."""
    timestamps: dict[str, str] = {}
    if kind == "local":
        storage = StorageSettings(url=str(tmp / "archive"))
        env = local_storage_env(tmp / "archive")
        place = str(tmp / "auditor" / "checkpoints")
    else:
        lock = {"object_lock_mode": "GOVERNANCE", "retention_days": 1} if kind == "locked" else {}
        storage = s3_settings(await _bucket(seaweed, make_bucket, kind), **lock)
        env = s3_storage_env(storage, seaweed)
        if lock:
            env |= {"ARCHIVER_STORAGE__OBJECT_LOCK_MODE": "GOVERNANCE"}
            env |= {"ARCHIVER_STORAGE__RETENTION_DAYS": "1"}
        place = f"s3://{await _witness_bucket(seaweed, make_bucket)}/checkpoints"
    timestamp = TimestampSettings()
    if stamps is not None:
        pki, url = stamps
        timestamp = TimestampSettings(url=url, ca_bundle=pki.ca_cert)
        timestamps = {"ARCHIVER_TIMESTAMP__CA_BUNDLE": str(pki.ca_cert)}
    sim = Simulator(
        SimConfig(seed=20, calls=6, recording_fraction=1.0, min_size=4_000, max_size=20_000)
    )
    state = tmp / "state.sqlite3"
    async with sim.serve() as base:
        settings = make_settings(
            sim, base, storage, str(state), manifest_batch=2, timestamp=timestamp
        )
        _, counts = await backfill(settings, sim)
    assert counts["failed"] == 0, counts
    env = cli_env({**env, "ARCHIVER_STATE__URL": str(state), **timestamps})
    return Target(kind, storage, tmp, env, place)


@pytest.fixture(params=STORAGES)
async def target(request, tmp_path, seaweed, make_bucket, s3_settings) -> Target:
    """An archive on each of the four storages."""
    return await make_target(request.param, tmp_path, seaweed, make_bucket, s3_settings)


@pytest.fixture(params=STORAGES)
async def stamped(request, tmp_path, seaweed, make_bucket, s3_settings, pki, tsa) -> Target:
    """An archive on each of the four storages, every link time-stamped."""
    return await make_target(
        request.param, tmp_path, seaweed, make_bucket, s3_settings, stamps=(pki, tsa)
    )
