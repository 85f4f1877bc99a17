"""Fixtures of the hardening tier: storage targets with a way to look behind the archiver."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from archiver.settings import StorageSettings
from tests.hardening.watcher import Lister, LocalLister, s3_lister
from tests.support.cli import s3_storage_env
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer


@dataclass
class Target:
    """A storage under test: settings to check it with, the CLI's variables, a lister."""

    kind: str
    settings: StorageSettings
    env: dict[str, str]
    lister: Lister
    server: SeaweedServer | None = None
    bucket: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@pytest.fixture(params=["local", "s3"])
async def target(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_bucket: MakeBucket,
    s3_settings: S3Settings,
    seaweed: SeaweedServer,
) -> AsyncIterator[Target]:
    if request.param == "local":
        root = tmp_path / "archive"
        yield Target(
            "local",
            StorageSettings(url=str(root)),
            {"ARCHIVER_STORAGE__URL": str(root)},
            LocalLister(root),
        )
        return
    bucket = await make_bucket()
    settings = s3_settings(bucket)
    async with contextlib.AsyncExitStack() as stack:
        lister = await stack.enter_async_context(
            s3_lister(seaweed, bucket, settings.bucket_and_prefix[1])
        )
        yield Target(
            "s3",
            settings,
            s3_storage_env(settings, seaweed),
            lister,
            server=seaweed,
            bucket=bucket,
        )
