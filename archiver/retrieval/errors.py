"""What a retrieval can run into, each mapped by the commands to its exit code.

ArchiverError
 ├── ConfigError
 │    ├── AmbiguousIdError   the id names several archived calls (exit 2)
 │    └── NoArchiveError     (in :mod:`archiver.errors`: the manifest reader raises it)
 ├── CallNotFoundError       no archived call has that id (exit 4)
 └── IntegrityError          an object is missing or not the manifest's bytes (exit 5)
"""

from __future__ import annotations

from enum import StrEnum

from archiver.errors import ArchiverError, ConfigError


class CallNotFoundError(ArchiverError):
    """No archived call has the asked-for id."""


class AmbiguousIdError(ConfigError):
    """Several archived calls answer to the id: the user must pick one."""


class IntegrityKind(StrEnum):
    """What is wrong; the value is the outcome an audit record keeps."""

    MISSING = "missing"  # the object (or the manifest object) is not in the storage
    CORRUPT = "corrupt"  # the bytes are not the ones the manifest records
    INDEX_MISMATCH = "index_mismatch"  # the id index disagrees with the manifest
    OUT_OF_CHAIN = "out_of_chain"  # the line's manifest object is not proven by the chain
    CUT = "cut"  # the line's batch was cut from the chain (or its recording has no line)


class IntegrityError(ArchiverError):
    """An archived object is missing, or its bytes are not the ones the manifest records."""

    def __init__(self, kind: IntegrityKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
