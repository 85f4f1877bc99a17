"""The test tiers share only ``tests/support``: no tier imports another tier's modules.

What two tiers both need (servers, the fixtures' types, the pipeline helpers, the
injected clock) lives in ``tests/support/``; a helper found in another tier's
test file is moved there, not imported from it.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parents[1]
SHARED = {"support"}
# Modules known to cross tiers while they move to tests/support (none now: the
# TCP and S3 fault proxies became the one tests/support/faultproxy.py).
LEAVING: set[str] = set()


def _tests_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("tests.")}


def test_no_tier_imports_another() -> None:
    crossing = []
    for path in sorted(TESTS.rglob("*.py")):
        parts = path.relative_to(TESTS).parts
        tier = parts[0] if len(parts) > 1 else None
        for module in sorted(_tests_imports(path) - LEAVING):
            other = module.split(".")[1]
            if other not in SHARED and other != tier:
                crossing.append(f"tests/{'/'.join(parts)} imports {module}")
    assert crossing == []
