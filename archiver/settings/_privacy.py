"""Phone numbers in new manifest lines: keyed hashes and sealed copies (opt-in)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel


class PrivacySettings(BaseModel):
    """Where the keys of the sealed phone numbers are (see :mod:`archiver.privacy`)."""

    # A local folder (0700; key files 0600) the operator can wipe: NOT the archive's
    # bucket (Object Lock would keep a destroyed key). Unset: numbers are written plain.
    keys: Path | None = None
