"""The SQL of job leases and named leases ("roles"), in both dialects."""

from __future__ import annotations

from archiver.state.queries import Sql, same

# SQLite names the state index: the jobs in flight are few, the others many.
# $1 the lease's end, $2 the owner.
RENEW = Sql(
    sqlite="UPDATE calls INDEXED BY calls_state SET lease_until = ?1"
    " WHERE state = 'transferring' AND lease_owner = ?2",
    postgres="UPDATE calls SET lease_until = $1 WHERE state = 'transferring' AND lease_owner = $2",
)
_RELEASE = Sql(
    sqlite="UPDATE calls INDEXED BY calls_state SET state = 'pending', next_attempt_at = ?1,"
    " updated_at = ?1, lease_owner = NULL, lease_until = NULL WHERE state = 'transferring'",
    postgres="UPDATE calls SET state = 'pending', next_attempt_at = $1,"
    " updated_at = $1, lease_owner = NULL, lease_until = NULL WHERE state = 'transferring'",
)
# $1 now, $2 the owner (NULL: every owner).
RELEASE_HELD = Sql(
    sqlite=_RELEASE.sqlite + " AND (?2 IS NULL OR lease_owner = ?2)",
    postgres=_RELEASE.postgres + " AND ($2::text IS NULL OR lease_owner = $2::text)",
)
# $1 now. A job with no lease end (left in flight before leases) is expired.
# PostgreSQL re-checks the end on the row as committed when the update reaches
# it: a heartbeat that committed meanwhile keeps its job.
RELEASE_EXPIRED = Sql(
    sqlite=_RELEASE.sqlite + " AND (lease_until IS NULL OR lease_until <= ?1)",
    postgres=_RELEASE.postgres + " AND (lease_until IS NULL OR lease_until <= $1)",
)
# $1 now.
LEASE_HOLDERS = Sql(
    sqlite="SELECT DISTINCT lease_owner FROM calls INDEXED BY calls_state"
    " WHERE state = 'transferring' AND lease_until > ?1 AND lease_owner IS NOT NULL",
    postgres="SELECT DISTINCT lease_owner FROM calls"
    " WHERE state = 'transferring' AND lease_until > $1 AND lease_owner IS NOT NULL",
)

# One upsert that overwrites the row only when it is free, expired or already
# the owner's; RETURNING yields the row only when it was inserted or updated.
# SQLite runs one write transaction at a time and each re-reads the row; in
# PostgreSQL of two racers one inserts and the other re-checks the committed
# row: either way exactly one wins. $1 role, $2 owner, $3 until, $4 now.
HOLD_ROLE = same(
    "INSERT INTO roles (role, owner, until) VALUES ($1, $2, $3)"
    " ON CONFLICT (role) DO UPDATE SET owner = excluded.owner,"
    " until = excluded.until WHERE roles.owner = excluded.owner OR roles.until <= $4"
    " RETURNING owner"
)
RELEASE_ROLE = same("DELETE FROM roles WHERE role = $1 AND owner = $2")
ROLE_HOLDER = same("SELECT owner FROM roles WHERE role = $1 AND until > $2")
