"""What a retrieval can run into, each mapped by the commands to its exit code.

ArchiverError
 ├── ConfigError
 │    └── AmbiguousIdError   the id names several archived calls (exit 2)
 ├── CallNotFoundError       no archived call has that id (exit 4)
 └── IntegrityError          an object is missing or not the manifest's bytes (exit 5)
"""

from __future__ import annotations

from archiver.errors import ArchiverError, ConfigError


class CallNotFoundError(ArchiverError):
    """No archived call has the asked-for id."""


class AmbiguousIdError(ConfigError):
    """Several archived calls answer to the id: the user must pick one."""


class IntegrityError(ArchiverError):
    """An archived object is missing, or its bytes are not the ones the manifest records."""
