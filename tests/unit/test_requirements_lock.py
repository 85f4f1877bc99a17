"""docker/requirements.lock, the image's pinned dependencies, covers pyproject's.

The image installs it with ``--require-hashes``, so a transitive dependency
missing from it fails the image's build (the container tier); this test says,
without a build, that every dependency pyproject.toml declares is pinned at a
version its range allows, each with its hashes.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "docker" / "requirements.lock"
# The command that writes the lock (docs/deployment.md shows it; pip-compile puts it
# in the lock's header).
LOCK_COMMAND = (
    "pip-compile --generate-hashes --index-url=https://pypi.org/simple --no-emit-find-links"
    " --no-emit-index-url --output-file=docker/requirements.lock --strip-extras pyproject.toml"
)


def _locked() -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes), from the lock's ``name==version \\ --hash=...`` entries."""
    text = LOCK.read_text().replace("\\\n", " ")
    pins: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)\s*$", line)
        assert match, f"not a pinned, hashed requirement: {line[:80]}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{name} pinned twice"
        pins[name] = (Version(match.group(2)), match.group(3).split())
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = _locked()
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in docker/requirements.lock: re-lock"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{requirement.name}=={version} is outside pyproject's {requirement.specifier}: re-lock"
        )


def test_every_pin_carries_its_hashes():
    for name, (_, hashes) in _locked().items():
        assert hashes, f"{name} has no --hash: the image installs with --require-hashes"


def test_the_lock_says_the_command_that_wrote_it():
    assert f"#    {LOCK_COMMAND}\n" in LOCK.read_text()
