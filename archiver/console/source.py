"""The console's one view of the manifest format: lines in, archived calls out.

Everything the console knows of a manifest line goes through here, so a
change of the manifest's home or shape is one edit.
"""

from __future__ import annotations

import json

from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import Manifest, parse_manifest, read_manifests
from archiver.storage.layout import MANIFEST_PREFIX

__all__ = [
    "MANIFEST_PREFIX",
    "Manifest",
    "ManifestEntry",
    "call_from_json",
    "parse",
    "read_manifests",
]


def parse(key: str, content: bytes) -> Manifest:
    """One manifest object's lines: the readable ones as calls, the others as bad lines."""
    return parse_manifest(key, content)


def call_from_json(line: str, manifest_key: str) -> ManifestEntry:
    """An archived call back from the JSON line the index stored."""
    return ManifestEntry.from_line(json.loads(line), manifest_key)
