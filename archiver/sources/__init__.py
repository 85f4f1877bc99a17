"""CDR sources: one module per provider behind the ``CdrSource`` protocol."""

from __future__ import annotations

from archiver.http import ApiClient
from archiver.models import Provider
from archiver.settings import SourceSettings, require_source
from archiver.sources.base import CdrSource, Page
from archiver.sources.cdr_v2 import CdrV2Source
from archiver.sources.epacific import EpacificSource

__all__ = ["CdrSource", "Page", "make_source"]


def make_source(settings: SourceSettings, client: ApiClient) -> CdrSource:
    """The source adapter the settings name (ConfigError if they are incomplete)."""
    require_source(settings)
    if settings.kind is Provider.CDR_V2:
        return CdrV2Source(client, settings)
    return EpacificSource(client, settings)
