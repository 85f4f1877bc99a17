"""The SQL of listing progress (windows, checkpoints) and of the reports, in both dialects."""

from __future__ import annotations

from archiver.state.queries import Sql, same

IS_WINDOW_DONE = same("SELECT 1 FROM windows WHERE provider = $1 AND start_at = $2 AND end_at = $3")
MARK_WINDOW_DONE = same(
    "INSERT INTO windows (provider, start_at, end_at, done_at) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT DO NOTHING"
)
GET_CHECKPOINT = same("SELECT value FROM checkpoints WHERE provider = $1")
# Only forward (SQLite's fixed-width UTC text compares like the times it encodes).
SET_CHECKPOINT = same(
    "INSERT INTO checkpoints (provider, value) VALUES ($1, $2)"
    " ON CONFLICT (provider) DO UPDATE SET value = excluded.value"
    " WHERE excluded.value > checkpoints.value"
)

COUNTS = same("SELECT state, count(*) FROM calls GROUP BY state")
OLDEST_UNARCHIVED = Sql(
    sqlite="SELECT min(first_seen_at) FROM calls INDEXED BY calls_state"
    " WHERE state IN ('pending', 'waiting_ready', 'transferring')",
    postgres="SELECT min(first_seen_at) FROM calls"
    " WHERE state IN ('pending', 'waiting_ready', 'transferring')",
)
# $1 the limit: SQLite's "none" is -1, PostgreSQL's NULL. Columns in
# archiver.state.base.Failure's field order.
FAILURES = Sql(
    sqlite="SELECT provider, cdr_id, sip_call_id, reason, attempts, updated_at, failure_kind"
    " FROM calls INDEXED BY calls_failed WHERE state = 'failed'"
    " ORDER BY updated_at DESC, id DESC LIMIT ?1",
    postgres="SELECT provider, cdr_id, sip_call_id, reason, attempts, updated_at, failure_kind"
    " FROM calls WHERE state = 'failed' ORDER BY updated_at DESC, id DESC LIMIT $1",
)
