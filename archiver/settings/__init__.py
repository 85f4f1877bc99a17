"""Settings, read once at the edge (environment, `.env`, `--env-file`).

Each component receives its own sub-model; nothing else reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from archiver.errors import ConfigError
from archiver.settings._aws import AwsCredentials, read_aws_credentials
from archiver.settings._privacy import PrivacySettings
from archiver.settings._retention import RetentionSettings
from archiver.settings._run import RunSettings
from archiver.settings._servers import ConsoleSettings, ServiceSettings
from archiver.settings._source import EPACIFIC_DEFAULT_BASE_URL, SourceSettings, require_source
from archiver.settings._state import StateSettings
from archiver.settings._storage import DEFAULT_KEY_TEMPLATE, StorageSettings
from archiver.settings._timestamp import TimestampSettings
from archiver.settings._transfer import RetrySettings, TransferSettings
from archiver.settings._values import ENV_PREFIX

__all__ = [
    "AwsCredentials",
    "DEFAULT_KEY_TEMPLATE",
    "ENV_PREFIX",
    "EPACIFIC_DEFAULT_BASE_URL",
    "ConsoleSettings",
    "PrivacySettings",
    "RetentionSettings",
    "RetrySettings",
    "RunSettings",
    "ServiceSettings",
    "Settings",
    "SourceSettings",
    "StateSettings",
    "StorageSettings",
    "TimestampSettings",
    "TransferSettings",
    "load_settings",
    "require_source",
]


class Settings(RunSettings, BaseSettings):
    """All of the archiver's settings: the pipeline's own (:class:`RunSettings`, at
    the top level of the names: ``ARCHIVER_POLL_INTERVAL``), then one sub-model
    per component (``ARCHIVER_SOURCE__...``), each handed to it as it is."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # An empty value (as in a copied settings.example.env) means "use the default".
        env_ignore_empty=True,
    )

    source: SourceSettings = Field(default_factory=SourceSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    # Connections to one recording host at once.
    per_host_connections: int = Field(default=8, ge=1, le=512)
    # Who retrieves (get, search exports, holds), for the audit trail; empty: OS user@host.
    operator: str | None = None
    # verify, reconcile: where their scratch SQLite file goes (a private temporary folder,
    # removed at exit; about 120 bytes a call); empty: the system's temporary directory.
    scratch_dir: Path | None = None
    # Log lines: json, text, or auto (text on a terminal, JSON lines otherwise).
    log_format: Literal["auto", "json", "text"] = "auto"
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    timestamp: TimestampSettings = Field(default_factory=TimestampSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)


def _variable(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def load_settings(env_file: str | Path | None = None) -> Settings:
    """Read the settings, or raise ConfigError naming each bad variable.

    Messages name the variable and the problem, never the value (it may be a secret).
    """
    if env_file is not None and not Path(env_file).is_file():
        raise ConfigError(f"--env-file: no such file: {env_file}")
    try:
        settings = Settings(_env_file=env_file) if env_file is not None else Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            loc = tuple(p for p in err["loc"] if not isinstance(p, int))
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{_variable(loc)}: {msg}")
        raise ConfigError("; ".join(problems)) from None
    if settings.storage.is_s3:
        settings.storage.use_credentials(read_aws_credentials(env_file))
    return settings
