"""The SQL of manifest batches and the chain, in both dialects."""

from __future__ import annotations

from archiver.state.queries import Sql, same

WRITER_ID = same("SELECT writer_id FROM writer WHERE id = 1")
# The next day with archived lines not in a batch.
NEXT_DAY = Sql(
    sqlite="SELECT manifest_date FROM calls INDEXED BY calls_unbatched"
    " WHERE state = 'archived' AND manifest_batch_id IS NULL ORDER BY manifest_date LIMIT 1",
    postgres="SELECT manifest_date FROM calls"
    " WHERE state = 'archived' AND manifest_batch_id IS NULL ORDER BY manifest_date LIMIT 1",
)
# Read and used under the writer's lock (SQLite's BEGIN IMMEDIATE, PostgreSQL's
# advisory lock): no one else can take this id meanwhile.
NEXT_BATCH_ID = same("SELECT coalesce(max(id), 0) + 1 FROM manifest_batches")
# The row comes first (content filled below): the calls reference it.
# $1 id, $2 key, $3 day, $4 now.
INSERT_BATCH = Sql(
    sqlite="INSERT INTO manifest_batches (id, key, manifest_date, content, line_count,"
    " created_at) VALUES (?1, ?2, ?3, x'', 0, ?4)",
    postgres="INSERT INTO manifest_batches (id, key, manifest_date, content, line_count,"
    " created_at) VALUES ($1, $2, $3, ''::bytea, 0, $4)",
)
# $1 the batch, $2 its day, $3 at most this many lines.
TAKE_LINES = Sql(
    sqlite="UPDATE calls SET manifest_batch_id = ?1 WHERE id IN"
    " (SELECT id FROM calls INDEXED BY calls_unbatched"
    " WHERE state = 'archived' AND manifest_batch_id IS NULL"
    " AND manifest_date = ?2 ORDER BY id LIMIT ?3) RETURNING id, manifest_line",
    postgres="UPDATE calls SET manifest_batch_id = $1 WHERE id IN"
    " (SELECT id FROM calls WHERE state = 'archived' AND manifest_batch_id IS NULL"
    " AND manifest_date = $2 ORDER BY id LIMIT $3) RETURNING id, manifest_line",
)
FILL_BATCH = same(
    "UPDATE manifest_batches SET content = $2, line_count = $3, link = $4 WHERE id = $1"
)
LAST_LINK = same("SELECT last_seq, last_link_sha256 FROM chain WHERE writer = $1")
SET_LAST_LINK = same(
    "INSERT INTO chain (writer, last_seq, last_link_sha256) VALUES ($1, $2, $3)"
    " ON CONFLICT (writer) DO UPDATE SET last_seq = excluded.last_seq,"
    " last_link_sha256 = excluded.last_link_sha256"
)
UNWRITTEN = same(
    "SELECT id, key, content, line_count, link FROM manifest_batches"
    " WHERE written_at IS NULL ORDER BY id"
)
# Idempotent: a written batch is left as it is. $1 the batch, $2 now.
MARK_WRITTEN = same(
    "UPDATE manifest_batches SET written_at = $2, content = NULL, link = NULL"
    " WHERE id = $1 AND written_at IS NULL"
)
BATCH_EXISTS = same("SELECT 1 FROM manifest_batches WHERE id = $1")
