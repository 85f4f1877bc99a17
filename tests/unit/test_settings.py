import pytest

from archiver.errors import ConfigError
from archiver.models import Provider
from archiver.settings import EPACIFIC_DEFAULT_BASE_URL, load_settings, require_source


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    import os

    for name in list(os.environ):
        if name.startswith("ARCHIVER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_the_contract():
    s = load_settings()
    assert s.source.kind is None
    assert s.source.timezone == "Asia/Ho_Chi_Minh"
    assert s.source.page_size == 100
    assert s.storage.url == "./archive"
    assert not s.storage.is_s3
    assert s.state.url == "./archiver-state.sqlite3"
    assert s.concurrency == 16
    assert s.poll_interval == 10
    assert s.lookback == 7200
    assert s.source.recording_hosts == []


def test_nested_env_and_comma_list(monkeypatch):
    monkeypatch.setenv("ARCHIVER_SOURCE__KIND", "epacific")
    monkeypatch.setenv("ARCHIVER_SOURCE__API_KEY", "k")
    monkeypatch.setenv("ARCHIVER_SOURCE__API_SECRET", "s")
    monkeypatch.setenv("ARCHIVER_SOURCE__RECORDING_HOSTS", "rec1.example.vn, REC2.example.vn")
    monkeypatch.setenv("ARCHIVER_STORAGE__URL", "s3://bucket/some/prefix/")
    s = load_settings()
    assert s.source.kind is Provider.EPACIFIC
    assert s.source.effective_base_url == EPACIFIC_DEFAULT_BASE_URL
    assert s.source.recording_hosts == ["rec1.example.vn", "rec2.example.vn"]
    assert s.storage.bucket_and_prefix == ("bucket", "some/prefix/")
    require_source(s.source)


def test_env_file_option(tmp_path):
    f = tmp_path / "prod.env"
    f.write_text("ARCHIVER_SOURCE__KIND=cdr_v2\nARCHIVER_SOURCE__BASE_URL=http://pbx.example.vn/\n")
    s = load_settings(f)
    assert s.source.kind is Provider.CDR_V2
    assert s.source.base_url == "http://pbx.example.vn"


def test_dotenv_in_working_directory_is_read(tmp_path):
    (tmp_path / ".env").write_text("ARCHIVER_CONCURRENCY=3\n")
    assert load_settings().concurrency == 3


def test_missing_env_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--env-file: no such file"):
        load_settings(tmp_path / "nope.env")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "ARCHIVER_SOURCE__KIND",
            "asterisk",
            "ARCHIVER_SOURCE__KIND: Input should be 'cdr_v2' or 'epacific'",
        ),
        (
            "ARCHIVER_SOURCE__PAGE_SIZE",
            "lots",
            "ARCHIVER_SOURCE__PAGE_SIZE: Input should be a valid integer",
        ),
        (
            "ARCHIVER_SOURCE__PAGE_SIZE",
            "0",
            "ARCHIVER_SOURCE__PAGE_SIZE: Input should be greater than",
        ),
        (
            "ARCHIVER_SOURCE__TIMEZONE",
            "Mars/Olympus",
            "ARCHIVER_SOURCE__TIMEZONE: unknown time zone",
        ),
        ("ARCHIVER_SOURCE__BASE_URL", "ftp://x", "ARCHIVER_SOURCE__BASE_URL: must be an http"),
        ("ARCHIVER_STORAGE__URL", "s3://", "ARCHIVER_STORAGE__URL: s3:// URL needs a bucket"),
        ("ARCHIVER_STORAGE__URL", "gs://b", "ARCHIVER_STORAGE__URL: must be s3://"),
        ("ARCHIVER_CONCURRENCY", "-1", "ARCHIVER_CONCURRENCY: Input should be greater than"),
        (
            "ARCHIVER_POLL_INTERVAL",
            "often",
            "ARCHIVER_POLL_INTERVAL: Input should be a valid number",
        ),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_secrets_never_appear_in_errors(monkeypatch):
    monkeypatch.setenv("ARCHIVER_SOURCE__TOKEN", "s3cr3t-token-value")
    monkeypatch.setenv("ARCHIVER_SOURCE__PAGE_SIZE", "s3cr3t-token-value")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "s3cr3t" not in str(info.value)
    monkeypatch.delenv("ARCHIVER_SOURCE__PAGE_SIZE")
    s = load_settings()
    assert "s3cr3t" not in repr(s)
    assert "s3cr3t" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "ARCHIVER_SOURCE__KIND: required"),
        (
            {"ARCHIVER_SOURCE__KIND": "cdr_v2"},
            "ARCHIVER_SOURCE__BASE_URL, ARCHIVER_SOURCE__TOKEN: required",
        ),
        (
            {"ARCHIVER_SOURCE__KIND": "epacific", "ARCHIVER_SOURCE__API_KEY": "k"},
            "ARCHIVER_SOURCE__API_SECRET: required for ARCHIVER_SOURCE__KIND=epacific",
        ),
    ],
)
def test_require_source(monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=message):
        require_source(load_settings().source)
