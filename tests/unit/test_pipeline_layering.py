"""The pipeline's import graph: producers and the service never import the runner.

Producers see the narrow Intake (what they list into) and a stop event; the
service reads a Health object. Neither reaches into Pipeline, so neither may
import it (issue 15: producers <-> runner was a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import archiver

PACKAGE = Path(archiver.__file__).parent


def imports_of(module: Path) -> set[str]:
    """Every archiver module the file imports, at run time or for type checking."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("archiver")}


@pytest.mark.parametrize(
    "path",
    ["pipeline/producers.py", "pipeline/intake.py", "service.py"],
)
def test_does_not_import_the_runner(path: str) -> None:
    assert "archiver.pipeline.runner" not in imports_of(PACKAGE / path)


def test_intake_is_a_leaf_of_the_pipeline() -> None:
    pipeline_modules = {f"archiver.pipeline.{p.stem}" for p in (PACKAGE / "pipeline").glob("*.py")}
    assert not imports_of(PACKAGE / "pipeline/intake.py") & pipeline_modules
