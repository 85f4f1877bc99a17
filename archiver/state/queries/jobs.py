"""The SQL of the job queue, the outcomes and the rechecks, in both dialects.

Outcome updates bind $1 the job id, $2 the time of the update, then their own
values; :func:`~archiver.state.queries.owned` appends the lease holder. Every
one spares archived jobs: a replayed call must not detach one from its batch.
"""

from __future__ import annotations

from archiver.state.queries import Sql, same

# A new call: pending when it has a URL, else no_recording (the state is bound).
# PostgreSQL says which rows it inserted (a repeated page goes row by row there).
INSERT_CALL = Sql(
    sqlite="INSERT INTO calls (provider, cdr_id, sip_call_id, started_at, record_json,"
    " recording_url, state, next_attempt_at, first_seen_at, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8)"
    " ON CONFLICT (cdr_id, provider) DO NOTHING",
    postgres="INSERT INTO calls (provider, cdr_id, sip_call_id, started_at, record_json,"
    " recording_url, state, next_attempt_at, first_seen_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)"
    " ON CONFLICT (cdr_id, provider) DO NOTHING RETURNING id",
)
# A known call not yet archived or failed, whose URL appeared or changed.
UPDATE_CALL = Sql(
    sqlite="UPDATE calls SET sip_call_id = ?3, started_at = ?4, record_json = ?5,"
    " recording_url = ?6, updated_at = ?7,"
    " next_attempt_at = CASE state WHEN 'no_recording' THEN ?7 ELSE next_attempt_at END,"
    " state = CASE state WHEN 'no_recording' THEN 'pending' ELSE state END"
    " WHERE cdr_id = ?2 AND provider = ?1"
    " AND state NOT IN ('archived', 'failed') AND recording_url IS NOT ?6",
    postgres="UPDATE calls SET sip_call_id = $3, started_at = $4, record_json = $5,"
    " recording_url = $6, updated_at = $7,"
    " next_attempt_at = CASE state WHEN 'no_recording' THEN $7 ELSE next_attempt_at END,"
    " state = CASE state WHEN 'no_recording' THEN 'pending' ELSE state END"
    " WHERE cdr_id = $2 AND provider = $1"
    " AND state NOT IN ('archived', 'failed') AND recording_url IS DISTINCT FROM $6",
)
# PostgreSQL only: a whole page as two statements over arrays (SQLite runs the
# one-row pair above for each row of the page, in one transaction).
INSERT_PAGE = (
    "INSERT INTO calls (provider, cdr_id, sip_call_id, started_at, record_json,"
    " recording_url, state, next_attempt_at, first_seen_at, updated_at)"
    " SELECT p, c, s, t, r, u, CASE WHEN u IS NULL THEN 'no_recording' ELSE 'pending' END,"
    " $7, $7, $7"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],"
    " $6::text[]) AS page (p, c, s, t, r, u)"
    " ON CONFLICT (cdr_id, provider) DO NOTHING"
)
UPDATE_PAGE = (
    "UPDATE calls SET sip_call_id = page.s, started_at = page.t, record_json = page.r,"
    " recording_url = page.u, updated_at = $7,"
    " next_attempt_at = CASE calls.state WHEN 'no_recording' THEN $7"
    " ELSE calls.next_attempt_at END,"
    " state = CASE calls.state WHEN 'no_recording' THEN 'pending' ELSE calls.state END"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],"
    " $6::text[]) AS page (p, c, s, t, r, u)"
    " WHERE calls.cdr_id = page.c AND calls.provider = page.p AND page.u IS NOT NULL"
    " AND calls.state NOT IN ('archived', 'failed')"
    " AND calls.recording_url IS DISTINCT FROM page.u"
)


# One statement: the selection and the state change cannot interleave with
# another claim. $1 now, $2 the limit, $3 the owner, $4 the lease's end, $5 the
# claim's own stamp (updated_at): what finds its jobs again when the connection
# broke before the answer came (see CLAIMED).
CLAIM_DUE = Sql(
    sqlite="UPDATE calls SET state = 'transferring', updated_at = ?5,"
    " lease_owner = ?3, lease_until = ?4"
    " WHERE id IN (SELECT id FROM calls INDEXED BY calls_due"
    " WHERE state IN ('pending', 'waiting_ready') AND next_attempt_at <= ?1"
    " ORDER BY next_attempt_at, id LIMIT ?2)"
    " RETURNING next_attempt_at, id, record_json, recording_url, state, attempts, first_seen_at",
    postgres="UPDATE calls SET state = 'transferring', updated_at = $5,"
    " lease_owner = $3, lease_until = $4"
    " WHERE id IN (SELECT id FROM calls"
    " WHERE state IN ('pending', 'waiting_ready') AND next_attempt_at <= $1"
    " ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
    " RETURNING next_attempt_at, id, record_json, recording_url, state, attempts, first_seen_at",
)
# The jobs one claim took ($1 the owner, $2 the claim's stamp), if it committed.
CLAIMED = same(
    "SELECT next_attempt_at, id, record_json, recording_url, state, attempts, first_seen_at"
    " FROM calls WHERE state = 'transferring' AND lease_owner = $1 AND updated_at = $2"
)
NEXT_DUE_AT = Sql(
    sqlite="SELECT min(next_attempt_at) FROM calls INDEXED BY calls_due"
    " WHERE state IN ('pending', 'waiting_ready')",
    postgres="SELECT min(next_attempt_at) FROM calls WHERE state IN ('pending', 'waiting_ready')",
)
# $1 now.
RETRY_FAILED = same(
    "UPDATE calls SET state = 'pending', next_attempt_at = $1, updated_at = $1,"
    " attempts = 0, reason = NULL, failure_kind = NULL WHERE state = 'failed'"
)
# $1 now, $2 the provider, [$3, $4) when the calls started.
RETRY_FAILED_BETWEEN = same(
    RETRY_FAILED.postgres + " AND provider = $2 AND started_at >= $3 AND started_at < $4"
)

MARK_ARCHIVED = same(
    "UPDATE calls SET state = 'archived', attempts = attempts + 1, reason = NULL,"
    " failure_kind = NULL, recording_url = NULL,"
    " object_key = $3, sha256 = $4, size = $5, content_type = $6, archived_at = $7,"
    " manifest_line = $8, manifest_date = $9, updated_at = $2"
    " WHERE id = $1 AND state != 'archived'"
)
MARK_RETRY = same(
    "UPDATE calls SET state = $3, attempts = attempts + 1, reason = $4,"
    " next_attempt_at = $5, updated_at = $2 WHERE id = $1 AND state != 'archived'"
)
POSTPONE = same(
    "UPDATE calls SET state = 'pending', reason = $3,"
    " next_attempt_at = $4, updated_at = $2 WHERE id = $1 AND state != 'archived'"
)
MARK_FAILED = same(
    "UPDATE calls SET state = 'failed', attempts = attempts + 1, reason = $3,"
    " failure_kind = $4, recording_url = NULL, updated_at = $2"
    " WHERE id = $1 AND state != 'archived'"
)
UPDATE_URL = same(
    "UPDATE calls SET recording_url = $3, updated_at = $2 WHERE id = $1 AND state != 'archived'"
)
JOB_EXISTS = same("SELECT 1 FROM calls WHERE id = $1")
# Whether an outcome update committed: the job carries its stamp ($2), and is
# still the owner's ($3, when the update named one).
UPDATED = same("SELECT 1 FROM calls WHERE id = $1 AND updated_at = $2")
UPDATED_OWNED = same(UPDATED.postgres + " AND lease_owner = $3")

# $1 since, $2 the limit, $3 and $4 the failure kinds that may still change.
RECHECK_CANDIDATES = same(
    "SELECT id, record_json, recording_url, state, attempts, first_seen_at FROM calls"
    " WHERE (state = 'no_recording' OR (state = 'failed'"
    " AND failure_kind IN ($3, $4))) AND started_at >= $1"
    " ORDER BY updated_at, id LIMIT $2"
)
# $1 the job, $2 the URL the source gave now (or NULL), $3 now.
RECHECK_NEW_URL = Sql(
    sqlite="UPDATE calls SET state = 'pending', recording_url = ?2, next_attempt_at = ?3,"
    " updated_at = ?3, attempts = 0, reason = NULL, failure_kind = NULL"
    " WHERE id = ?1 AND state IN ('no_recording', 'failed')"
    " AND ?2 IS NOT NULL AND recording_url IS NOT ?2",
    postgres="UPDATE calls SET state = 'pending', recording_url = $2, next_attempt_at = $3,"
    " updated_at = $3, attempts = 0, reason = NULL, failure_kind = NULL"
    " WHERE id = $1 AND state IN ('no_recording', 'failed')"
    " AND $2::text IS NOT NULL AND recording_url IS DISTINCT FROM $2::text",
)
# $1 the job, $2 now: to the back of the recheck line.
RECHECK_LATER = same(
    "UPDATE calls SET updated_at = $2 WHERE id = $1 AND state IN ('no_recording', 'failed')"
)

# Columns a Job is rebuilt from (see archiver.state.records.stored_job).
FIND_JOB = same(
    "SELECT id, record_json, recording_url, state, attempts, first_seen_at FROM calls"
    " WHERE cdr_id = $1 OR sip_call_id = $1 ORDER BY started_at DESC, id DESC LIMIT 1"
)

# The manifest line kept of an archived call ($1 provider, $2 cdr id).
ARCHIVED_LINE = same(
    "SELECT manifest_line FROM calls WHERE provider = $1 AND cdr_id = $2"
    " AND state = 'archived' AND manifest_line IS NOT NULL"
)
