"""settings.example.env lists every setting with its default, and loads as is."""

import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from archiver.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "settings.example.env"


def _variables(model: type[BaseModel], prefix: str = "ARCHIVER_") -> dict[str, object]:
    out: dict[str, object] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= _variables(annotation, f"{prefix}{name.upper()}__")
        else:
            out[f"{prefix}{name.upper()}"] = field
    return out


def _example() -> dict[str, str]:
    pairs = {}
    for line in EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_every_setting_is_in_the_example_and_nothing_else():
    assert set(_example()) == set(_variables(Settings))


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("ARCHIVER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("clean_env")
def test_the_example_loads_and_gives_the_defaults():
    from_example = load_settings(EXAMPLE)
    assert from_example.model_dump() == load_settings().model_dump()
