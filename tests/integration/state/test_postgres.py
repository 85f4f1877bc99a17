"""What only the PostgreSQL store has: several processes (pools) on one database at
once, its migrations under a lock, its deadlines, and DSNs whose password never shows.

Each test gets a fresh database on the session's throwaway cluster; "two
processes" are two stores with two pools.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from archiver.errors import ConfigError, StateUnavailableError
from archiver.manifest.chain import Link, sha256_hex
from archiver.settings import StateSettings
from archiver.simulator import Simulator
from archiver.state import JobState, PostgresState, open_state_read_only, open_state_store
from archiver.state.postgres import PoolConfig
from archiver.state.postgres.migrations import LATEST_VERSION
from tests.integration.state.helpers import T0, TEST_POOL, archived_entry, make_call
from tests.support.cli import archiver_env, run_cli
from tests.support.postgres import PASSWORD, PASSWORD_ROLE, PostgresServer
from tests.support.seaweed import free_ports

LEASE = timedelta(seconds=120)


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[PostgresState, PostgresState]]:
    """Two processes' stores (two pools) on one database."""
    a = await PostgresState.open(postgres_url, TEST_POOL)
    b = await PostgresState.open(postgres_url, TEST_POOL)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def sql(url: str, statement: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(statement))
    finally:
        await conn.close()


async def _until_waiting_on_a_lock(url: str, task: asyncio.Task[object]) -> None:
    """Until a session of ``url``'s database waits on a lock (the statement under test
    is blocked where the test wants it), or ``task`` ended without waiting."""
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(60):
        while not task.done() and not (await sql(url, waiting))[0][0]:
            await asyncio.sleep(0.01)


# -- several processes at once -----------------------------------------------------


async def test_concurrent_claims_from_two_pools_never_hand_one_job_to_both(pair) -> None:
    a, b = pair
    await a.jobs.add_calls([make_call(str(i)) for i in range(300)], T0)
    claims = [
        store.jobs.claim_due(T0, 9, owner=name, lease=LEASE)
        for _ in range(20)
        for store, name in ((a, "proc-a"), (b, "proc-b"))
    ]
    batches = await asyncio.gather(*claims)
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 300
    # Each job is held by the process that got it, and by no other.
    got_a = {job.id for batch in batches[0::2] for job in batch}
    held = await sql(_url(a), "SELECT id, lease_owner FROM calls")
    assert {r["id"] for r in held if r["lease_owner"] == "proc-a"} == got_a


def _url(store: PostgresState) -> str:
    t = store.pool.target
    return f"postgresql://{t.user}@{t.host}:{t.port}/{t.database}"


async def test_overlapping_pages_from_two_pools_add_each_call_once(pair) -> None:
    """Two processes adding the same CDRs in opposite orders: no deadlock, each call new once."""
    a, b = pair
    calls = [make_call(f"{i:03d}") for i in range(200)]
    for round_ in range(3):
        page = calls[: 100 * (round_ + 1)]
        first, second = await asyncio.gather(
            a.jobs.add_calls(page, T0), b.jobs.add_calls(list(reversed(page)), T0)
        )
        assert first.new + second.new == (100 if round_ < 2 else 0)
        assert first.updated == second.updated == 0
    assert sum((await a.reports.counts()).values()) == 200


async def test_release_expired_never_takes_a_lease_renewed_meanwhile(pair) -> None:
    """A heartbeat in flight when another process releases expired leases: the
    release waits for the heartbeat's row and re-reads its end, so the job stays."""
    a, b = pair
    await a.jobs.add_calls([make_call("1"), make_call("2")], T0)
    held = await a.jobs.claim_due(T0, 2, owner="proc-a", lease=LEASE)
    assert len(held) == 2
    after_first_lease = T0 + LEASE + timedelta(seconds=1)
    # proc-a's heartbeat, caught between its update and its commit.
    beat = await asyncpg.connect(_url(a))
    try:
        tx = beat.transaction()
        await tx.start()
        await beat.execute(
            "UPDATE calls SET lease_until = $1 WHERE lease_owner = 'proc-a'",
            after_first_lease + LEASE,
        )
        release = asyncio.create_task(b.leases.release_expired(after_first_lease))
        await _until_waiting_on_a_lock(_url(a), release)
        assert not release.done()  # waiting on the heartbeat's rows, not deciding on old ones
        await tx.commit()
        assert await release == 0
    finally:
        await beat.close()
    counts = await b.reports.counts()
    assert counts[JobState.TRANSFERRING] == 2
    assert await b.leases.lease_holders(after_first_lease) == ["proc-a"]


async def test_release_expired_leaves_live_leases_while_claims_go_on(pair) -> None:
    a, b = pair
    await a.jobs.add_calls([make_call(str(i)) for i in range(60)], T0)

    async def claimer() -> int:
        taken = 0
        for _ in range(20):
            taken += len(await a.jobs.claim_due(T0, 3, owner="proc-a", lease=LEASE))
        return taken

    async def releaser() -> int:
        return sum(
            [await b.leases.release_expired(T0 + LEASE - timedelta(seconds=1)) for _ in range(10)]
        )

    taken, released = await asyncio.gather(claimer(), releaser())
    assert released == 0
    assert (await a.reports.counts())[JobState.TRANSFERRING] == taken == 60


async def test_a_release_chosen_as_a_deadlock_victim_is_run_again(pair) -> None:
    """Another session locks the expired jobs in the other order: PostgreSQL rolls
    the release back (it waited first, so its deadlock check fires first) and the
    store runs it again once the other session is through."""
    a, b = pair
    await a.jobs.add_calls([make_call("1"), make_call("2")], T0)
    first, second = sorted(j.id for j in await a.jobs.claim_due(T0, 2, owner="dead", lease=LEASE))
    other = await asyncpg.connect(_url(a))
    try:
        await other.execute("SET deadlock_timeout = '30s'")  # the store's check fires first
        tx = other.transaction()
        await tx.start()
        await other.execute("UPDATE calls SET reason = 'held' WHERE id = $1", second)
        release = asyncio.create_task(b.leases.release_expired(T0 + LEASE))
        # The release holds the first job and waits on the second.
        await _until_waiting_on_a_lock(_url(a), release)
        await other.execute("UPDATE calls SET reason = 'held too' WHERE id = $1", first)
        await tx.commit()
        assert await release == 2
    finally:
        await other.close()
    assert (await b.reports.counts())[JobState.PENDING] == 2


async def test_concurrent_batches_have_distinct_seqs_and_every_line_once(pair) -> None:
    a, b = pair
    writer = await a.batches.writer_id()
    assert writer == await b.batches.writer_id()  # one writer per database, whichever replica
    calls = [make_call(str(i)) for i in range(120)]
    await a.jobs.add_calls(calls, T0)
    lines: set[str] = set()

    async def archive_and_cut(store: PostgresState, name: str) -> None:
        while jobs := await store.jobs.claim_due(T0, 7, owner=name, lease=LEASE):
            for job in jobs:
                entry = archived_entry(job.id)
                lines.add(entry.to_line())
                await store.outcomes.mark_archived(job.id, entry, "2021-02-17")
            await store.batches.create_manifest_batches(writer, max_lines=5)

    await asyncio.gather(
        archive_and_cut(a, "proc-a"),
        archive_and_cut(b, "proc-b"),
        *(s.batches.create_manifest_batches(writer, 4) for s in (a, b, a, b)),
    )
    await asyncio.gather(
        a.batches.create_manifest_batches(writer, 5), b.batches.create_manifest_batches(writer, 5)
    )
    batches = await a.batches.unwritten_manifest_batches()
    written = [line for batch in batches for line in batch.content.decode().splitlines()]
    assert len(written) == len(set(written)) == 120
    assert set(written) == lines
    assert [batch.id for batch in batches] == list(range(1, len(batches) + 1))
    # One unbroken chain: each link follows the one before it.
    previous: tuple[int, str] | None = None
    for batch in batches:
        assert batch.link is not None
        link = Link.from_bytes(batch.link)
        assert (link.seq, link.writer, link.manifest_key) == (batch.id, writer, batch.key)
        assert (link.prev_seq, link.prev_sha256) == (previous or (None, None))
        previous = (link.seq, sha256_hex(batch.link))


async def test_replicas_migrating_at_once_leave_one_schema(postgres_empty_url: str) -> None:
    stores = await asyncio.gather(
        *(PostgresState.open(postgres_empty_url, TEST_POOL) for _ in range(4))
    )
    try:
        ids = {await s.batches.writer_id() for s in stores}
        assert len(ids) == 1
    finally:
        for s in stores:
            await s.close()
    assert [
        tuple(r) for r in await sql(postgres_empty_url, "SELECT id, version FROM schema_version")
    ] == [(1, LATEST_VERSION)]
    assert [r[0] for r in await sql(postgres_empty_url, "SELECT count(*) FROM writer")] == [1]


# -- schema --------------------------------------------------------------------------


async def test_a_newer_schema_is_refused_and_left_alone(postgres_url: str) -> None:
    async with open_state_store(StateSettings(url=postgres_url)):
        pass
    await sql(postgres_url, f"UPDATE schema_version SET version = {LATEST_VERSION + 5}")
    with pytest.raises(ConfigError, match=r"schema version \d+, newer than this archiver knows"):
        await PostgresState.open(postgres_url, TEST_POOL)
    with pytest.raises(ConfigError, match="newer"):
        async with open_state_read_only(StateSettings(url=postgres_url)):
            pass
    [row] = await sql(postgres_url, "SELECT version FROM schema_version")
    assert row[0] == LATEST_VERSION + 5


async def test_read_only_opens_nothing_new_and_refuses_writes(postgres_empty_url: str) -> None:
    settings = StateSettings(url=postgres_empty_url)
    async with open_state_read_only(settings) as state:
        assert state is None  # an empty database: not migrated (that would be a write)
    assert await sql(postgres_empty_url, "SELECT to_regclass('calls') IS NULL") == [(True,)]
    async with open_state_store(settings) as writable:
        await writable.jobs.add_calls([make_call("1")], T0)
    async with open_state_read_only(settings) as state:
        assert state is not None
        assert (await state.reports.counts())[JobState.PENDING] == 1
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await state.jobs.add_calls([make_call("2")], T0)


# -- connections, deadlines and secrets -----------------------------------------------


async def test_a_statement_past_its_deadline_is_state_unavailable(postgres_url: str) -> None:
    store = await PostgresState.open(postgres_url, PoolConfig(size=2, timeout=0.5))
    blocker = await asyncpg.connect(postgres_url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE checkpoints IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StateUnavailableError, match=r"PostgreSQL database test_\w+ on"):
                await store.progress.set_checkpoint("cdr_v2", T0)
        # The lock gone, the same store works again.
        await store.progress.set_checkpoint("cdr_v2", T0)
        assert await store.progress.get_checkpoint("cdr_v2") == T0
    finally:
        await blocker.close()
        await store.close()


async def test_idle_sessions_the_server_ended_are_replaced(postgres_url: str) -> None:
    """A server restart, or an administrator ending sessions, while the store is idle:
    the next operation opens new connections, whether or not the client has read the
    server's goodbye yet (a dead one met first is ridden over: ARCHIVER_STATE__OUTAGE)."""
    config = PoolConfig(size=TEST_POOL.size, timeout=TEST_POOL.timeout, outage=30)
    store = await PostgresState.open(postgres_url, config)
    try:
        await store.jobs.add_calls([make_call("1")], T0)
        assert await _end_sessions(postgres_url) >= 1
        assert (await store.reports.counts())[JobState.PENDING] == 1
        assert store.availability.available
    finally:
        await store.close()


async def test_a_session_ended_mid_operation_is_state_unavailable(postgres_url: str) -> None:
    store = await PostgresState.open(postgres_url, TEST_POOL)
    blocker = await asyncpg.connect(postgres_url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE checkpoints IN ACCESS EXCLUSIVE MODE")
            waiting = asyncio.create_task(store.progress.set_checkpoint("cdr_v2", T0))
            await _until_waiting_on_a_lock(postgres_url, waiting)
            await blocker.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                " WHERE NOT granted AND relation = 'checkpoints'::regclass"
            )
            with pytest.raises(StateUnavailableError, match="terminating connection"):
                await waiting
    finally:
        await blocker.close()
        await store.close()


async def _end_sessions(url: str) -> int:
    """End every other session on the database (as pg_terminate_backend does); how many."""
    ended = await sql(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    return len(ended)


def _with_password(postgres_cluster: PostgresServer, database: str, password: str) -> str:
    return postgres_cluster.dsn(database, user=PASSWORD_ROLE, password=password)


async def test_the_right_password_opens_the_state(
    postgres_cluster: PostgresServer, postgres_url: str
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    url = _with_password(postgres_cluster, database, PASSWORD)
    async with open_state_store(StateSettings(url=url)) as state:
        assert (await state.reports.counts())[JobState.PENDING] == 0


@pytest.mark.parametrize("case", ["wrong password", "no server", "no database", "garbled"])
async def test_a_refused_connection_names_host_and_database_never_the_password(
    case: str, postgres_cluster: PostgresServer, postgres_url: str
) -> None:
    secret = "Hunter2-never-shown"
    database = postgres_url.rsplit("/", 1)[1]
    host = "127.0.0.1"
    if case == "wrong password":
        url = _with_password(postgres_cluster, database, secret)
    elif case == "no server":
        (port,) = free_ports(1)  # nothing listens there
        url = f"postgresql://{PASSWORD_ROLE}:{secret}@{host}:{port}/{database}"
    elif case == "no database":
        database = "no_such_db"
        url = _with_password(postgres_cluster, database, secret)
    else:
        url = f"postgres://{PASSWORD_ROLE}:{secret}@{host}:port-is-not-a-number/{database}"
    with pytest.raises(ConfigError) as caught:
        await open_state_store(StateSettings(url=url, timeout=5)).__aenter__()
    message = str(caught.value)
    assert secret not in message
    assert secret not in repr(caught.value.__cause__) + repr(caught.value.__context__)
    assert message.startswith("ARCHIVER_STATE__URL:")
    if case != "garbled":
        assert f"PostgreSQL database {database} on {host}:" in message


CLI_COMMANDS = {
    "status": ("status",),
    "check": ("check",),
    "backfill": ("backfill", "--since", "2026-01-05", "--until", "2026-01-06"),
}


@pytest.mark.sim(seed=1, calls=2)
@pytest.mark.parametrize("command", sorted(CLI_COMMANDS))
async def test_the_cli_says_one_line_without_the_password_and_exits_2(
    command: str,
    sim: Simulator,
    postgres_cluster: PostgresServer,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    secret = "Hunter2-never-shown"
    database = postgres_url.rsplit("/", 1)[1]
    env = archiver_env(
        tmp_path, sim=sim, ARCHIVER_STATE__URL=_with_password(postgres_cluster, database, secret)
    )
    result = await run_cli(*CLI_COMMANDS[command], env=env, cwd=tmp_path)
    assert result.code == 2, result
    assert secret not in result.out + result.err
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert f"PostgreSQL database {database} on 127.0.0.1:{postgres_cluster.port}" in lines[0]
    assert "password authentication failed" in lines[0]
    assert sim.stats["recording_requests"] == 0


@pytest.mark.sim(seed=1, calls=2)
async def test_the_cli_checks_and_reports_a_postgres_state(
    sim: Simulator, postgres_url: str, tmp_path: Path
) -> None:
    env = archiver_env(tmp_path, sim=sim, ARCHIVER_STATE__URL=postgres_url)
    database = postgres_url.rsplit("/", 1)[1]
    checked = await run_cli("check", env=env, cwd=tmp_path)
    assert checked.code == 0, checked.err
    assert f"state: OK: PostgreSQL database {database} on 127.0.0.1:" in checked.out
    result = await run_cli("status", env=env, cwd=tmp_path)
    assert result.code == 0, result.err
    assert f"state:   PostgreSQL database {database} on 127.0.0.1:" in result.out
    assert "pending" in result.out
