"""Optional RFC 3161 timestamps of the manifest chain's head."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from archiver.settings._values import ENV_PREFIX, http_url


class TimestampSettings(BaseModel):
    """Optional RFC 3161 timestamps of the manifest chain's head."""

    # The TSA's URL; unset: no timestamps are asked, and verify checks none.
    url: str | None = None
    # PEM file of the certificates a token's signer must chain up to. Needed to
    # check tokens (when they are asked, and by verify).
    ca_bundle: Path | None = Field(default=None, validate_default=True)
    # Seconds a whole request to the TSA may take.
    timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value)

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None and info.data.get("url"):
            raise ValueError(f"required with {ENV_PREFIX}TIMESTAMP__URL (tokens must be checked)")
        if value is not None and not value.is_file():
            raise ValueError("no such file")
        return value
