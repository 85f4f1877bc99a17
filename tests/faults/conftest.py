"""The fault-injection suite: every test here is marked ``faults``."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the suite's tests, so ``-m faults`` (or ``-m "not faults"``) picks them."""
    for item in items:
        if "tests/faults/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)
