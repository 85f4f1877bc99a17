"""A storage attempt's whole-request deadline: both timeouts plus the body at the
minimum throughput, so a large part may be slow but no attempt waits for ever."""

from __future__ import annotations

from archiver.settings import StorageSettings
from archiver.storage.s3_config import attempt_deadline, client_config


def test_a_bodiless_request_gets_the_connect_and_read_timeouts():
    assert attempt_deadline(0, connect=10, read=30, min_throughput=65536) == 40


def test_a_part_gets_its_size_at_the_minimum_throughput():
    part = 8 * 1024 * 1024
    assert attempt_deadline(part, connect=10, read=30, min_throughput=65536) == 40 + 128


def test_the_client_config_carries_the_settings():
    settings = StorageSettings(
        url="s3://b", connect_timeout=3, read_timeout=7, min_throughput=1024 * 1024
    )
    config = client_config(settings, max_attempts=4, max_connections=9)
    assert config.connect_timeout == 3
    assert config.read_timeout == 7
    assert config.retries == {"mode": "standard", "max_attempts": 4}
    assert config.http_session_cls.__name__ == "DeadlineSession"
