"""Fixtures every tier may use (loaded by ``pytest_plugins`` in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from archiver.simulator import SimConfig, Simulator

# What ``sim`` serves unless the test or its module says otherwise.
DEFAULT_SIM = {"seed": 1, "calls": 10}


@pytest.fixture
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """The simulated provider on loopback; ``sim.base_url`` is where it answers.

    Configure it with ``@pytest.mark.sim(seed=..., calls=..., ...)`` (the
    :class:`SimConfig` fields) on the test or as the module's ``pytestmark``.
    """
    marker = request.node.get_closest_marker("sim")
    fields = {**DEFAULT_SIM, **(marker.kwargs if marker else {})}
    simulator = Simulator(SimConfig(**fields))
    async with simulator.serve():
        yield simulator
