"""Settings, read once at the edge (environment, `.env`, `--env-file`).

Each component receives its own sub-model; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import re
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from archiver.errors import ConfigError
from archiver.models import Direction, Provider
from archiver.private_files import DEFAULT_FILE_MODE, MODE_PATTERN, parse_mode

ENV_PREFIX = "ARCHIVER_"
EPACIFIC_DEFAULT_BASE_URL = "https://api.ccall.vn"
DEFAULT_KEY_TEMPLATE = "recordings/{yyyy}/{mm}/{dd}/{sip_call_id}.{ext}"
# A URL scheme (two letters or more, so that a Windows drive "C:" is a path).
_LOOKS_LIKE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _http_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


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
        hosts = _split_commas(value)
        if isinstance(hosts, list):
            return [str(h).lower() for h in hosts]
        return hosts

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _http_url(value)

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


class StorageSettings(BaseModel):
    """Where recordings and manifests are written."""

    url: str = "./archive"
    endpoint_url: str | None = None
    region: str | None = None
    # S3 addressing: "path" suits MinIO, SeaweedFS and most self-hosted stores.
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    key_template: str = DEFAULT_KEY_TEMPLATE
    # Recordings up to this size are buffered and sent in one PUT; larger ones
    # go up as a multipart upload, part by part as they arrive.
    buffer_bound: int = Field(default=8 * 1024 * 1024, ge=64 * 1024, le=5 * 1024**3)
    part_size: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024, le=5 * 1024**3)
    # TLS certificate checks towards the storage; turn off only for test endpoints.
    verify_tls: bool = True
    # S3 Object Lock applied at write time to recordings, manifests and audit
    # records: GOVERNANCE or COMPLIANCE, for ``retention_days`` after the write.
    # The bucket must have been created with Object Lock (``archiver check``).
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None
    retention_days: int = Field(default=0, ge=0, le=36500, validate_default=True)
    # Server-side encryption of every object: AES256 (SSE-S3) or aws:kms.
    sse: Literal["AES256", "aws:kms"] | None = None
    # aws:kms only: the key (id, ARN or alias); empty means the AWS-managed key.
    kms_key_id: str | None = Field(default=None, validate_default=True)
    # Storage class of recordings (manifests and indexes stay in the default class).
    storage_class: str | None = None
    # ``get --url``: seconds a presigned URL stays valid (SigV4 allows 7 days at most).
    presign_expiry: int = Field(default=3600, ge=1, le=7 * 86400)
    # A local directory: mode of the files written (folders add x where r is granted).
    file_mode: str = Field(default=DEFAULT_FILE_MODE, pattern=MODE_PATTERN)
    # At start, incomplete uploads / temporary files older than this many seconds
    # are removed; a younger one may be another process's write in progress.
    abandoned_after: float = Field(default=21600.0, ge=60)

    @property
    def file_mode_bits(self) -> int:
        """``file_mode`` as permission bits."""
        return parse_mode(self.file_mode)

    @field_validator("object_lock_mode", mode="before")
    @classmethod
    def _lock_mode(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("retention_days")
    @classmethod
    def _retention_days(cls, value: int, info: ValidationInfo) -> int:
        mode = info.data.get("object_lock_mode")
        if mode is not None and value < 1:
            raise ValueError("must be at least 1 when ARCHIVER_STORAGE__OBJECT_LOCK_MODE is set")
        if mode is None and value > 0:
            raise ValueError("needs ARCHIVER_STORAGE__OBJECT_LOCK_MODE (GOVERNANCE or COMPLIANCE)")
        return value

    @field_validator("sse", mode="before")
    @classmethod
    def _sse(cls, value: object) -> object:
        if isinstance(value, str) and value.lower() in ("aes256", "aws:kms"):
            return "AES256" if value.lower() == "aes256" else "aws:kms"
        return value

    @field_validator("kms_key_id")
    @classmethod
    def _kms_key_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("sse") != "aws:kms":
            raise ValueError("needs ARCHIVER_STORAGE__SSE=aws:kms")
        return value or None

    @field_validator("storage_class", mode="before")
    @classmethod
    def _storage_class(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        name = value.strip().upper()
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            raise ValueError("must be a storage class name such as STANDARD_IA")
        if name in ("GLACIER", "DEEP_ARCHIVE"):
            # Their objects need a restore before any read: get and verify could not work.
            raise ValueError(f"{name} objects cannot be read without a restore; use GLACIER_IR")
        return name

    @property
    def protection_requested(self) -> list[str]:
        """The S3-only protection settings that are set (their variable names)."""
        names = ("object_lock_mode", "sse", "storage_class")
        return [f"{ENV_PREFIX}STORAGE__{n.upper()}" for n in names if getattr(self, n)]

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _http_url(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if value.startswith("s3://"):
            bucket = value[5:].split("/", 1)[0]
            if not bucket:
                raise ValueError("s3:// URL needs a bucket: s3://bucket[/prefix]")
        elif _LOOKS_LIKE_URL.match(value) and not value.startswith("file://"):
            # "s3:/bucket" or "s3:bucket" would otherwise be a local folder named "s3:".
            raise ValueError("must be s3://bucket[/prefix], file://PATH or a local path")
        return value

    @property
    def is_s3(self) -> bool:
        """True for an S3 URL, False for a local directory."""
        return self.url.startswith("s3://")

    @property
    def bucket_and_prefix(self) -> tuple[str, str]:
        """For ``s3://bucket/prefix``: the bucket, and the prefix with a trailing slash."""
        rest = self.url[5:]
        bucket, _, prefix = rest.partition("/")
        prefix = prefix.strip("/")
        return bucket, (prefix + "/" if prefix else "")

    @property
    def local_path(self) -> Path:
        """For a local storage URL: the directory."""
        if self.url.startswith("file://"):
            return Path(self.url[len("file://") :])
        return Path(self.url)


class StateSettings(BaseModel):
    """The state database: an SQLite file (the default), or PostgreSQL for replicas."""

    url: str = "./archiver-state.sqlite3"
    # Mode of a new database file (its -wal and -shm follow it) and of its new folder.
    file_mode: str = Field(default=DEFAULT_FILE_MODE, pattern=MODE_PATTERN)
    # PostgreSQL only: connections per process. Each operation holds one for a
    # short statement (workers wait on the network, not the database), so a few
    # serve the default 16 workers; replicas x this must stay under the server's
    # max_connections (100 by default).
    pool_size: int = Field(default=8, ge=1, le=100)
    # PostgreSQL only: seconds to connect, to wait for a pooled connection, and
    # for any one statement, before the operation fails.
    timeout: float = Field(default=30.0, gt=0, le=3600)

    @property
    def file_mode_bits(self) -> int:
        """``file_mode`` as permission bits."""
        return parse_mode(self.file_mode)

    @property
    def is_postgres(self) -> bool:
        """Whether the URL names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
        return self.url.startswith(("postgresql://", "postgres://"))

    @property
    def path(self) -> Path:
        """The SQLite file the URL names (ConfigError for any other URL)."""
        if self.url.startswith("sqlite:///"):
            return Path(self.url[len("sqlite:///") :])
        if "://" in self.url:
            raise ConfigError(
                f"{ENV_PREFIX}STATE__URL: must be sqlite:///PATH, a path,"
                " or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
            )
        return Path(self.url)

    def validate_url(self) -> None:
        """ConfigError naming the variable when the URL is neither SQLite nor PostgreSQL."""
        if not self.is_postgres:
            _ = self.path


class RetrySettings(BaseModel):
    """When a recording is tried again, and when it is given up."""

    max_attempts: int = Field(default=8, ge=1, le=100)
    initial: float = Field(default=2.0, gt=0)
    maximum: float = Field(default=300.0, gt=0)
    # A recording that 404s soon after its call is "not ready": retried more
    # slowly until this many seconds after the call ended, then failed.
    ready_deadline: float = Field(default=86400.0, gt=0)
    not_ready_initial: float = Field(default=30.0, gt=0)
    not_ready_maximum: float = Field(default=1800.0, gt=0)
    # Attempts a 404 gets before "never became available", whatever the call's
    # age (past the deadline they back off like transient failures; the last
    # one uses a fresh URL from the provider's lookup by id).
    not_ready_min_attempts: int = Field(default=4, ge=1, le=100)


class TransferSettings(BaseModel):
    """Bounds on one recording's transfer: a hostile or broken host cannot hold a
    worker, or fill the storage, for ever."""

    # Seconds one attempt may take, from the request to the stored object.
    deadline: float = Field(default=1800.0, gt=0)
    # Bytes per second a recording must arrive at, measured over each window.
    min_throughput: int = Field(default=1024, ge=0)
    throughput_window: float = Field(default=60.0, gt=0)
    # Largest recording accepted (a call of 10 hours in WAV is about 1 GiB).
    max_size: int = Field(default=2 * 1024**3, ge=1024)


class ServiceSettings(BaseModel):
    """The daemon's HTTP endpoints: /healthz, /readyz, /metrics."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    # Seconds between the readiness probes of the storage.
    probe_interval: float = Field(default=15.0, gt=0)
    # /readyz fails when the source or the storage was last reached longer ago
    # than this many seconds.
    ready_timeout: float = Field(default=180.0, gt=0)
    # /healthz fails when the pipeline's loop has not moved for this long.
    stuck_after: float = Field(default=120.0, gt=0)


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
        return _http_url(value)

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None and info.data.get("url"):
            raise ValueError(f"required with {ENV_PREFIX}TIMESTAMP__URL (tokens must be checked)")
        if value is not None and not value.is_file():
            raise ValueError("no such file")
        return value


class ConsoleSettings(BaseModel):
    """The auditor's web console (``archiver console``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    # The local SQLite index of the manifests (a cache: rebuilt from the storage at will).
    index_path: Path = Path("./archiver-console.sqlite3")
    # Local accounts, one ``name:role:argon2-hash`` a line (``archiver console-user``).
    users_file: Path = Path("./archiver-console-users")
    # Whether the console asks for a reason before a play, a download, an export or a hold.
    reason: Literal["required", "optional", "off"] = "required"
    # Identity from an authenticating reverse proxy: this header, only from these addresses.
    proxy_header: str | None = None
    proxy_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The role of a proxy-authenticated user who is not in the users file.
    proxy_role: Literal["viewer", "listener", "exporter", "officer"] = "viewer"
    # Minutes a session lasts from sign-in.
    session_minutes: float = Field(default=480.0, gt=0)
    # Secure cookies need HTTPS (browsers also accept them from http://localhost).
    cookie_secure: bool = True
    language: Literal["vi", "en"] = "vi"
    page_size: int = Field(default=50, ge=1, le=1000)
    # Calls one export ZIP may hold.
    export_limit: int = Field(default=500, ge=1, le=100_000)
    # Seconds between looks for new manifest (and audit) objects.
    refresh_interval: float = Field(default=60.0, gt=0)
    # Failed sign-ins allowed per address and per user name in 15 minutes.
    login_attempts: int = Field(default=5, ge=1, le=1000)

    @field_validator("proxy_addresses", mode="before")
    @classmethod
    def _addresses(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("proxy_addresses")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("proxy_header", mode="before")
    @classmethod
    def _header(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9-]+", value.strip()):
            raise ValueError("must be an HTTP header name such as X-Forwarded-User")
        return value.strip() if isinstance(value, str) else value


class Settings(BaseSettings):
    """All of the archiver's settings."""

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
    concurrency: int = Field(default=16, ge=1, le=512)
    # Seconds a claimed recording stays with its process without a heartbeat.
    lease: float = Field(default=120.0, ge=3)
    # run replicas: seconds the leader role stays with a replica that stopped
    # renewing it (renewed every third of it); also the lease of the manifest
    # writer's role and of a backfill window's listing.
    leader_lease: float = Field(default=30.0, ge=3)
    poll_interval: float = Field(default=10.0, gt=0)
    lookback: float = Field(default=7200.0, ge=0)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    # The backfill lists its range in windows of this many seconds; each
    # completed window is remembered, so a re-run skips it.
    window: float = Field(default=3600.0, ge=60)
    # Seconds in-flight transfers get to finish after SIGINT/SIGTERM.
    grace: float = Field(default=20.0, ge=0)
    # Manifest batches: at most this many lines per object; a line waits at most
    # manifest_interval seconds (counted from the first line since the last write).
    manifest_batch: int = Field(default=1000, ge=1, le=100_000)
    manifest_interval: float = Field(default=10.0, gt=0)
    # Backfill: how long to wait, after listing, for retries that are not due yet.
    backfill_max_wait: float = Field(default=600.0, ge=0)
    # Connections to one recording host at once.
    per_host_connections: int = Field(default=8, ge=1, le=512)
    # Who retrieves (get, search exports, holds), for the audit trail; empty: OS user@host.
    operator: str | None = None
    # run: polls stay this many seconds behind now. 0 by default: a CDR written
    # late changes its minute's count, so the next poll lists it anyway.
    settle: float = Field(default=0.0, ge=0)
    # run: every this many seconds a sweep re-lists, in full, the calls that started
    # within ``longest_call`` seconds (the longest call you expect; at least the
    # lookback), and asks the source again about up to ``sweep_lookups`` recordings
    # that may still come (no URL yet, or never available) until the ready deadline.
    sweep_interval: float = Field(default=600.0, gt=0)
    longest_call: float = Field(default=14400.0, ge=0)
    sweep_lookups: int = Field(default=100, ge=0, le=10_000)
    # Log lines: json, text, or auto (text on a terminal, JSON lines otherwise).
    log_format: Literal["auto", "json", "text"] = "auto"
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    timestamp: TimestampSettings = Field(default_factory=TimestampSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)


def _variable(loc: tuple[int | str, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def load_settings(env_file: str | Path | None = None) -> Settings:
    """Read the settings, or raise ConfigError naming each bad variable.

    Messages name the variable and the problem, never the value (it may be a secret).
    """
    if env_file is not None and not Path(env_file).is_file():
        raise ConfigError(f"--env-file: no such file: {env_file}")
    try:
        if env_file is not None:
            return Settings(_env_file=env_file)
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            loc = tuple(p for p in err["loc"] if not isinstance(p, int))
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{_variable(loc)}: {msg}")
        raise ConfigError("; ".join(problems)) from None


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
