"""Fixtures of the console's tests: one archive written once, copied for each test."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from archiver.settings import StorageSettings
from tests.support.console import archived_storage


@pytest.fixture(scope="session")
def _archive_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console-archive")
    storage = StorageSettings(url=str(root / "archive"))
    asyncio.run(archived_storage(storage, root / "builder"))
    return root / "archive"


@pytest.fixture
def local_archive(_archive_template: Path, tmp_path: Path) -> StorageSettings:
    """A local archive of six calls, this test's own copy."""
    target = tmp_path / "archive"
    shutil.copytree(_archive_template, target)
    return StorageSettings(url=str(target))


@pytest.fixture(scope="session")
def _two_batch_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console-two-batches")
    storage = StorageSettings(url=str(root / "archive"))
    asyncio.run(archived_storage(storage, root / "builder", manifest_batch=3))
    return root / "archive"


@pytest.fixture
def two_batch_archive(_two_batch_template: Path, tmp_path: Path) -> StorageSettings:
    """A local archive of six calls in manifest objects of three lines (two links or more)."""
    target = tmp_path / "archive"
    shutil.copytree(_two_batch_template, target)
    return StorageSettings(url=str(target))
