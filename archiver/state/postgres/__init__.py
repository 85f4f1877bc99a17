"""The state store on PostgreSQL: several ``archiver run`` replicas on one state.

Selected by ``ARCHIVER_STATE__URL=postgresql://...`` (or ``postgres://``).
"""

from archiver.state.postgres.connect import PoolConfig
from archiver.state.postgres.store import PostgresState

__all__ = ["PoolConfig", "PostgresState"]
