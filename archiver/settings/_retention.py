"""Records management: the retention schedule's rules file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class RetentionSettings(BaseModel):
    """Where the retention schedule is (see :mod:`archiver.manifest.retention`)."""

    # A TOML (or .json) file of ordered rules; unset: the default rule alone
    # (ARCHIVER_STORAGE__RETENTION_DAYS days, when above 0).
    rules_file: Path | None = None
