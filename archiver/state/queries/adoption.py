"""The SQL of adoption: a call the archive already holds a call line of, taken into the state
as archived with that line, and never cut into a batch of this state.

Every adopted call points at batch 0, a batch of no object (created on first
use, marked written): its line is in the archive already, by another writer.
Batches are numbered from 1, so batch 0 takes no number from the chain.
"""

from __future__ import annotations

from archiver.state.queries import Sql, same

ADOPTED_BATCH = 0
# $1 now.
ENSURE_ADOPTED_BATCH = Sql(
    sqlite="INSERT OR IGNORE INTO manifest_batches (id, key, manifest_date, content,"
    " line_count, created_at, written_at) VALUES (0, '(lines already in the archive)', '',"
    " NULL, 0, ?1, ?1)",
    postgres="INSERT INTO manifest_batches (id, key, manifest_date, content,"
    " line_count, created_at, written_at) VALUES (0, '(lines already in the archive)', '',"
    " NULL, 0, $1, $1) ON CONFLICT DO NOTHING",
)
# A claimed job: $1 id, $2 now, then the line's values as MARK_ARCHIVED binds them. No
# attempt counted (nothing was transferred).
ADOPT = same(
    "UPDATE calls SET state = 'archived', reason = NULL, failure_kind = NULL,"
    " recording_url = NULL, object_key = $3, sha256 = $4, size = $5, content_type = $6,"
    " archived_at = $7, manifest_line = $8, manifest_date = $9, manifest_batch_id = 0,"
    " updated_at = $2 WHERE id = $1 AND state != 'archived'"
)
# The archived lines waiting for a batch, with their calls.
WAITING_LINES = Sql(
    sqlite="SELECT id, provider, cdr_id, manifest_date FROM calls INDEXED BY calls_unbatched"
    " WHERE state = 'archived' AND manifest_batch_id IS NULL ORDER BY id",
    postgres="SELECT id, provider, cdr_id, manifest_date FROM calls"
    " WHERE state = 'archived' AND manifest_batch_id IS NULL ORDER BY id",
)
# A waiting line whose call the archive now holds: the archive's line replaces it, in batch 0.
# $1 id, $2 now, then the line's values as ADOPT binds them.
SET_ASIDE = same(
    "UPDATE calls SET object_key = $3, sha256 = $4, size = $5, content_type = $6,"
    " archived_at = $7, manifest_line = $8, manifest_date = $9, manifest_batch_id = 0,"
    " updated_at = $2"
    " WHERE id = $1 AND state = 'archived' AND manifest_batch_id IS NULL"
)
