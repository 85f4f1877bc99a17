"""The provider API settings, and the check that a real provider has what it needs."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from archiver.errors import ConfigError
from archiver.models import Direction, Provider
from archiver.settings._values import ENV_PREFIX, http_url, split_commas

EPACIFIC_DEFAULT_BASE_URL = "https://api.ccall.vn"


class SourceSettings(BaseModel):
    """The provider API the CDRs come from."""

    kind: Provider | None = None
    base_url: str | None = None
    token: SecretStr | None = None
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    timezone: str = "Asia/Ho_Chi_Minh"
    page_size: int = Field(default=100, ge=1, le=1000)
    recording_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Requests per second to the API; 0 means no limit.
    rate_limit: float = Field(default=10.0, ge=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    # Seconds one API request may take in all (connect, send, answer, body): a
    # server that trickles its answer costs this, then a retry.
    request_timeout: float = Field(default=120.0, gt=0)
    # Attempts per API request before a transient failure is given up.
    max_attempts: int = Field(default=6, ge=1, le=50)
    # Longest wait between two attempts, and the cap on a server's Retry-After.
    max_backoff: float = Field(default=60.0, gt=0)
    # epacific: send the body as JSON (default) or form-encoded.
    request_format: Literal["json", "form"] = "json"
    # Bounds on listing: a broken or hostile API cannot flood memory or the
    # state, or page for ever. Bytes of one API answer; rows of one page; pages
    # of one window; seconds to list one window.
    max_body: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_rows: int = Field(default=10_000, ge=1)
    max_pages: int = Field(default=10_000, ge=1)
    list_deadline: float = Field(default=1800.0, gt=0)
    # What the provider's numeric direction codes mean ("1=inbound,2=outbound"):
    # the providers' documents do not say, so none is guessed. search uses it.
    direction_codes: Annotated[dict[str, Direction], NoDecode] = Field(default_factory=dict)

    @field_validator("direction_codes", mode="before")
    @classmethod
    def _direction_codes(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        codes: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            code, sep, meaning = part.partition("=")
            if not sep or not code.strip().isdigit():
                raise ValueError(f"{part!r}: expected CODE=DIRECTION, e.g. 2=outbound")
            codes[code.strip()] = meaning.strip().lower()
        return codes

    @field_validator("recording_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        hosts = split_commas(value)
        if isinstance(hosts, list):
            return [str(h).lower() for h in hosts]
        return hosts

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return http_url(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The zone of the provider's naive timestamps."""
        return ZoneInfo(self.timezone)

    @property
    def effective_base_url(self) -> str | None:
        """The API root, with the provider's default filled in."""
        if self.base_url:
            return self.base_url
        if self.kind is Provider.EPACIFIC:
            return EPACIFIC_DEFAULT_BASE_URL
        return None


def require_source(source: SourceSettings) -> None:
    """Check the source settings a real provider needs; raise ConfigError if any is missing."""
    if source.kind is None:
        raise ConfigError(f"{ENV_PREFIX}SOURCE__KIND: required (cdr_v2 or epacific)")
    missing = []
    if source.effective_base_url is None:
        missing.append("BASE_URL")
    if source.kind is Provider.CDR_V2:
        if source.token is None or not source.token.get_secret_value():
            missing.append("TOKEN")
    else:
        for name in ("api_key", "api_secret"):
            secret = getattr(source, name)
            if secret is None or not secret.get_secret_value():
                missing.append(name.upper())
    if missing:
        names = ", ".join(f"{ENV_PREFIX}SOURCE__{m}" for m in missing)
        raise ConfigError(f"{names}: required for {ENV_PREFIX}SOURCE__KIND={source.kind.value}")
