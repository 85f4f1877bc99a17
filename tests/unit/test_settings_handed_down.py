"""Each component is handed its settings' sub-model itself: no field-by-field copy,
so a default lives in archiver/settings only and a setting always reaches its user."""

from __future__ import annotations

import dataclasses

import pytest

from archiver.pipeline.policy import RetryPolicy
from archiver.pipeline.stats import PipelineConfig
from archiver.pipeline.transfer import TransferConfig
from archiver.settings import RunSettings, Settings


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ARCHIVER_POLL_INTERVAL", "3.5")
    monkeypatch.setenv("ARCHIVER_TRANSFER__DEADLINE", "99")
    monkeypatch.setenv("ARCHIVER_RETRY__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("ARCHIVER_STORAGE__ABANDONED_AFTER", "600")
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_pipeline_gets_the_sub_models_themselves(settings: Settings) -> None:
    config = PipelineConfig.of(settings)
    assert config.run is settings
    assert config.source is settings.source
    assert config.storage is settings.storage
    assert config.service is settings.service
    assert (config.run.poll_interval, config.storage.abandoned_after) == (3.5, 600)


def test_the_transfer_and_the_retry_policy_too(settings: Settings) -> None:
    transfer = TransferConfig.of(settings)
    assert transfer.storage is settings.storage
    assert transfer.limits is settings.transfer
    assert transfer.tz == settings.source.tz
    assert transfer.limits.deadline == 99
    policy = RetryPolicy(settings.retry)
    assert policy.settings is settings.retry
    assert policy.settings.max_attempts == 3


def test_the_settings_are_the_pipelines_run_settings() -> None:
    # The top-level names stay (ARCHIVER_POLL_INTERVAL), declared once in RunSettings.
    assert issubclass(Settings, RunSettings)
    assert set(RunSettings.model_fields) <= set(Settings.model_fields)


@pytest.mark.parametrize("config", [PipelineConfig, TransferConfig, RetryPolicy])
def test_no_config_repeats_a_default_of_the_settings(config: type) -> None:
    """A config's fields are sub-models (or, for the policy, its jitter): no number
    written a second time beside the setting it copies."""
    numbers = [
        f.name
        for f in dataclasses.fields(config)
        if isinstance(f.default, int | float) and f.name != "jitter"
    ]
    assert numbers == []
