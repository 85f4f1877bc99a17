"""Timestamp settings: unset changes nothing; a URL needs a CA bundle holding certificates."""

from __future__ import annotations

import os

import pytest

from archiver.errors import ConfigError
from archiver.settings import load_settings
from archiver.timestamping import load_anchors


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("ARCHIVER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_unset_means_no_timestamps():
    settings = load_settings().timestamp
    assert settings.url is None
    assert settings.ca_bundle is None


def test_a_url_without_a_ca_bundle_is_refused(monkeypatch):
    monkeypatch.setenv("ARCHIVER_TIMESTAMP__URL", "http://127.0.0.1:9/tsa")
    with pytest.raises(ConfigError, match="ARCHIVER_TIMESTAMP__CA_BUNDLE: required with"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ARCHIVER_TIMESTAMP__URL", "ftp://tsa.example/", "ARCHIVER_TIMESTAMP__URL: must be an"),
        ("ARCHIVER_TIMESTAMP__CA_BUNDLE", "no-such.pem", "ARCHIVER_TIMESTAMP__CA_BUNDLE: no such"),
        ("ARCHIVER_TIMESTAMP__TIMEOUT", "0", "ARCHIVER_TIMESTAMP__TIMEOUT: "),
    ],
)
def test_bad_values_are_named(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


@pytest.mark.parametrize("content", [b"", b"not a certificate\n", b"\x00\xff" * 40])
def test_a_bundle_without_certificates_is_refused(tmp_path, content):
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(content)
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        load_anchors(bundle)


def test_an_unreadable_bundle_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_anchors(tmp_path)
