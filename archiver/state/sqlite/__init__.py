"""The state on one SQLite file: the default, for one process or a few on one machine."""

from archiver.state.sqlite.database import Database, decode_time, encode_time
from archiver.state.sqlite.store import SqliteState

__all__ = ["Database", "SqliteState", "decode_time", "encode_time"]
