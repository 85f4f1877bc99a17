"""Fixtures shared by every test tier.

- The AWS environment is isolated for every test: no ambient ``AWS_*``
  variable, no ``~/.aws`` file, no instance-metadata lookup.
- ``seaweed``: one SeaweedFS S3 server per session, on loopback.
- ``s3_env``: the standard AWS variables pointing at it, for this test only
  (the product reads credentials through the standard chain, never as arguments).
- ``make_bucket``: creates uniquely named buckets, emptied and deleted afterwards.
- ``s3_settings``: StorageSettings for ``s3://BUCKET/PREFIX`` on that server.
- ``postgres_server``: one throwaway PostgreSQL cluster per session, on loopback
  (its admin DSN); ``postgres_url``: a fresh, migrated database on it for this
  test only; ``postgres_empty_url``: one with no schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir

from archiver.settings import StorageSettings
from tests.support.postgres import (
    PostgresCluster,
    PostgresMissingError,
    PostgresServer,
)
from tests.support.seaweed import (
    MakeBucket,
    S3Settings,
    SeaweedProcess,
    SeaweedServer,
    admin_client,
    empty_and_delete_bucket,
)

# What the migration draws once per database (archiver/state/postgres/migrations.py).
REDRAW_WRITER_ID = (
    "UPDATE writer SET writer_id = 'w' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 16)"
)

# Hypothesis keeps its files (example database, constants) beside this file, not at
# the top level of the repository.
set_hypothesis_home_dir(str(Path(__file__).parent / ".hypothesis"))

# By default the same examples every run (a brand-new random finding must not decide
# whether a submission lands, and CI may not set CI=1); HYPOTHESIS_PROFILE=dev
# draws new random examples, to go looking for bugs. No per-example deadline:
# CI shares two cores with whatever else runs.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The slow suites (fault soaks, crash loops) re-run commands several times, each
# with its own deadline: the suite-wide 120 s timeout would cut them short first
# on a loaded machine. They get 600 s, unless they ask for a timeout of their own.
SLOW_TEST_TIMEOUT = 600


# Cases of a matrix left to ``-m ondemand`` for CI's 25-minute budget, each beside a
# sibling that runs in CI on the same code path (docs/development.md "On demand"
# says which and why). By node id, since a case is often a combination of a
# fixture's and a parametrize's values, which neither can mark alone.
ON_DEMAND = {
    # The S3 case runs in CI; the local folder's differs only by the store.
    "tests/e2e/test_dispose_cli.py::test_dispose_keeps_held_and_locked_and_leaves_proof[local]",
    "tests/e2e/test_dispose_cli.py::test_a_subject_request_finds_exports_and_erases_what_it_may[local]",
    "tests/e2e/test_duplicates_cli.py::test_duplicates_are_reported_then_superseded_by_a_chained_record[local]",
    "tests/e2e/test_readside_reconcile.py::test_fix_relines_the_calls_the_state_believes_archived[local]",
    "tests/e2e/test_evidence_package.py::test_a_case_exports_a_package_a_third_party_checks_without_the_archiver[local]",
    "tests/e2e/test_exactly_once_cli.py::test_a_backfill_with_the_state_lost_adopts_what_the_archive_holds[local]",
    # Each provider and each store runs in CI once (cdr_v2 on S3, epacific locally).
    "tests/e2e/test_reconcile_cli.py::test_complete_then_missing_then_fixed[s3-epacific]",
    "tests/e2e/test_reconcile_cli.py::test_complete_then_missing_then_fixed[local-cdr_v2]",
    # A versioned bucket without a lock: overwrite and manifest deletion run in CI
    # (the attacks that leave old versions behind); the plain and locked buckets
    # run every attack.
    "tests/e2e/test_integrity_cli.py::test_the_default_verify_and_get_catch_it[s3-versioned-forged-metadata]",
    "tests/e2e/test_integrity_cli.py::test_the_default_verify_and_get_catch_it[s3-versioned-multipart-overwrite]",
    "tests/e2e/test_integrity_cli.py::test_the_default_verify_and_get_catch_it[s3-versioned-manifest-hidden]",
    "tests/e2e/test_integrity_cli.py::test_the_default_verify_and_get_catch_it[s3-versioned-manifest-edited]",
    "tests/e2e/test_integrity_cli.py::test_the_default_verify_and_get_catch_it[s3-versioned-pointer-wrong-line]",
    # Replicas killed at random: three on PostgreSQL run in CI.
    "tests/e2e/test_replicas.py::test_replicas_killed_at_random_archive_every_call_exactly_once[sqlite-2-21]",
}


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT))
        if item.nodeid in ON_DEMAND:
            item.add_marker(pytest.mark.ondemand)


# The shared fixtures (the simulated provider...) live in tests/support/.
pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture(autouse=True)
def _isolated_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    # The developer's own profiles and credentials must not leak in...
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    # ...and a missing credential must fail at once, not probe 169.254.169.254.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A SeaweedFS S3 endpoint for the whole session."""
    process = SeaweedProcess(tmp_path_factory.mktemp("seaweed"))
    server = process.start()
    try:
        yield server
    finally:
        process.stop()


@pytest.fixture
def s3_env(seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> SeaweedServer:
    """Set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION for this test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", seaweed.region)
    return seaweed


@pytest.fixture
async def make_bucket(seaweed: SeaweedServer) -> AsyncIterator[MakeBucket]:
    """``await make_bucket(object_lock=False) -> name``: a fresh bucket, removed after the test."""
    created: list[str] = []
    async with admin_client(seaweed) as client:

        async def make(*, object_lock: bool = False) -> str:
            name = f"test-{uuid.uuid4().hex[:16]}"
            await client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
            created.append(name)
            return name

        yield make
        for name in created:
            await empty_and_delete_bucket(client, name)


@pytest.fixture
def s3_settings(s3_env: SeaweedServer) -> S3Settings:
    """``s3_settings(bucket, prefix="prefix", **overrides)``: StorageSettings on SeaweedFS."""

    def build(bucket: str, prefix: str = "prefix", **overrides: object) -> StorageSettings:
        url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        fields: dict[str, object] = {
            "url": url,
            "endpoint_url": s3_env.endpoint_url,
            "addressing_style": "path",
            "region": s3_env.region,
            **overrides,
        }
        return StorageSettings.model_validate(fields)

    return build


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresServer]:
    """The session's PostgreSQL cluster (initdb + pg_ctl on 127.0.0.1), stopped at the end.

    Missing binaries FAIL the tests that need it: a Postgres test never counts as
    passed by being skipped.
    """
    try:
        cluster = PostgresCluster()
    except PostgresMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_server(postgres_cluster: PostgresServer) -> str:
    """The superuser's DSN (``postgresql://postgres@127.0.0.1:PORT/postgres``, trusted)."""
    return postgres_cluster.admin_dsn


@pytest.fixture(scope="session")
def postgres_template(postgres_cluster: PostgresServer) -> str:
    """The database every ``postgres_url`` database is copied from (its name): migrated
    once by the archiver itself, in a subprocess (its own event loop), so a test's
    store finds its schema current instead of building it."""
    name = "archiver_template"
    dsn = postgres_cluster.create_database(name)
    migrate = (
        "import asyncio, sys\n"
        "from archiver.state import PostgresState\n"
        "from archiver.state.postgres import PoolConfig\n"
        "async def main():\n"
        "    store = await PostgresState.open(sys.argv[1], PoolConfig(size=1, timeout=60))\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", migrate, dsn], check=True, timeout=120)
    return name


@pytest.fixture
def postgres_url(postgres_cluster: PostgresServer, postgres_template: str) -> Iterator[str]:
    """A fresh, migrated state database for this test; dropped afterwards.

    Copied from the template, then given a writer id of its own (every state
    database has its own manifest writer, as if migrated on its own).
    """
    name = f"test_{uuid.uuid4().hex[:16]}"
    dsn = postgres_cluster.create_database(name, postgres_template, REDRAW_WRITER_ID)
    try:
        yield dsn
    finally:
        postgres_cluster.drop_database(name)


@pytest.fixture
def postgres_empty_url(postgres_cluster: PostgresServer) -> Iterator[str]:
    """A fresh, empty database (no schema) for this test; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    dsn = postgres_cluster.create_database(name)
    try:
        yield dsn
    finally:
        postgres_cluster.drop_database(name)
