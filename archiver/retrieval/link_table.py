"""The chain's links by manifest key, on a verify's scratch SQLite file.

A full ``verify`` keeps every checked link until its end (each manifest object
read is checked against its link; the links whose object was not read are
reported). Held as Python objects that is about 530 bytes a manifest object,
the largest of what grew with the archive (docs/performance.md, "Full verify
in bounded memory"): 650 MB at 1.25 million manifest objects. :class:`LinkTable`
keeps them as a row each in the scratch file (:mod:`archiver.retrieval.scratch`)
and makes a :class:`~archiver.manifest.chain.Link` on each access, so the
readers of ``ChainAudit.links`` keep their code. A link read back is equal to
the one stored, not the same object: compare links with ``==``.

:func:`in_key_order` walks any such mapping sorted by key: a :class:`LinkTable`
from its index, a row at a time, instead of a sorted list of every link.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, ItemsView, Iterator, Mapping, MutableMapping

from archiver.manifest.chain import Link

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS chain_links (manifest_key TEXT PRIMARY KEY, writer TEXT NOT NULL,"
    " seq INTEGER NOT NULL, manifest_sha256 TEXT NOT NULL, manifest_size INTEGER NOT NULL,"
    " lines INTEGER NOT NULL, prev_seq INTEGER, prev_sha256 TEXT) WITHOUT ROWID"
)
_GET = (
    "SELECT manifest_key, writer, seq, manifest_sha256, manifest_size, lines, prev_seq, prev_sha256"
    " FROM chain_links WHERE manifest_key = ?"
)
_PUT = (
    "INSERT OR REPLACE INTO chain_links (manifest_key, writer, seq, manifest_sha256,"
    " manifest_size, lines, prev_seq, prev_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A page of keys from (and, with _NEXT, after) a key, below a bound.
_FIRST = (
    "SELECT manifest_key, writer, seq, manifest_sha256, manifest_size, lines, prev_seq, prev_sha256"
    " FROM chain_links WHERE manifest_key >= ? AND manifest_key < ?"
    " ORDER BY manifest_key LIMIT 1000"
)
_NEXT = (
    "SELECT manifest_key, writer, seq, manifest_sha256, manifest_size, lines, prev_seq, prev_sha256"
    " FROM chain_links WHERE manifest_key > ? AND manifest_key < ?"
    " ORDER BY manifest_key LIMIT 1000"
)
_BY_LINK = "CREATE INDEX IF NOT EXISTS chain_links_by_link ON chain_links (writer, seq)"
_KEY_OF = (
    "SELECT manifest_key FROM chain_links WHERE writer = ? AND seq = ?"
    " ORDER BY manifest_key DESC LIMIT 1"
)
# Above every character of a key: the end of a prefix's range (SQLite compares UTF-8
# bytes, which sort as the code points Python's str comparison uses).
_TOP = chr(0x10FFFF)

_Row = tuple[str, str, int, str, int, int, int | None, str | None]


def _link(row: _Row) -> Link:
    key, writer, seq, sha, size, lines, prev_seq, prev_sha = row
    return Link(sys.intern(writer), seq, key, sha, size, lines, prev_seq, prev_sha)


class _Items(ItemsView[str, Link]):
    """The rows in key order, one query (not a lookup per key)."""

    _mapping: LinkTable

    def __iter__(self) -> Iterator[tuple[str, Link]]:
        for row in self._mapping.rows(""):
            yield row[0], _link(row)


class LinkTable(MutableMapping[str, Link]):
    """Manifest key -> :class:`Link`, a row each in ``db`` (a scratch connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._by_link = False  # the index of key_of, made on its first call
        db.execute(_SCHEMA)

    @property
    def db(self) -> sqlite3.Connection:
        """The scratch connection the table is on (another audit may keep a table there)."""
        return self._db

    def __getitem__(self, key: str) -> Link:
        row = self._db.execute(_GET, (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return _link(row)

    def __setitem__(self, key: str, link: Link) -> None:
        self._db.execute(
            _PUT,
            (
                key,
                link.writer,
                link.seq,
                link.manifest_sha256,
                link.manifest_size,
                link.lines,
                link.prev_seq,
                link.prev_sha256,
            ),
        )

    def __delitem__(self, key: str) -> None:
        if not self._db.execute("DELETE FROM chain_links WHERE manifest_key = ?", (key,)).rowcount:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        found = self._db.execute("SELECT 1 FROM chain_links WHERE manifest_key = ?", (key,))
        return found.fetchone() is not None

    def __iter__(self) -> Iterator[str]:
        for row in self.rows(""):
            yield row[0]

    def __len__(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM chain_links").fetchone()
        return int(count)

    def key_of(self, writer: str, seq: int) -> str | None:
        """The manifest key of ``writer``'s link ``seq`` (the last by key if several)."""
        if not self._by_link:
            self._db.execute(_BY_LINK)
            self._by_link = True
        found = self._db.execute(_KEY_OF, (writer, seq)).fetchone()
        return None if found is None else str(found[0])

    def items(self) -> _Items:
        """The links in key order, read a page at a time."""
        return _Items(self)

    def rows(self, prefix: str) -> Iterator[_Row]:
        """The rows whose key starts with ``prefix``, in key order (fetched in pages: the
        cursor of one query stays valid while others run on the connection)."""
        after, first = prefix, True
        while True:
            query = _FIRST if first else _NEXT
            page: list[_Row] = self._db.execute(query, (after, prefix + _TOP)).fetchall()
            if not page:
                return
            yield from page
            after, first = page[-1][0], False


def key_by_link(links: Mapping[str, Link]) -> Callable[[str, int], str | None]:
    """(writer, seq) -> the manifest key its link records (the last by key if several):
    from a :class:`LinkTable`, one indexed query each; from a dict, a reverse dict."""
    if isinstance(links, LinkTable):
        return links.key_of
    found = {(link.writer, link.seq): key for key, link in links.items()}
    return lambda writer, seq: found.get((writer, seq))


def in_key_order(links: Mapping[str, Link], prefix: str = "") -> Iterator[tuple[str, Link]]:
    """``links``' items whose key starts with ``prefix``, sorted by key; from a
    :class:`LinkTable`, a page of rows at a time instead of every link at once."""
    if isinstance(links, LinkTable):
        for row in links.rows(prefix):
            yield row[0], _link(row)
        return
    for key, link in sorted(links.items()):
        if key.startswith(prefix):
            yield key, link
