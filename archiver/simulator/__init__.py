"""A simulated call-center provider: both provider APIs, recordings and faults.

It serves a seeded, deterministic set of calls over the cdr_v2 API
(``GET /v2/cdr``, Bearer token) and the epacific API (``POST /cdrs/json``,
api_key/api_secret), with each call's recording behind a direct, redirecting
or signed link. Faults (5xx, 429, slow answers, broken downloads, recordings
late to appear) are switched on per run or at runtime through ``/_sim/faults``.

It backs the integration tests, ``archiver demo`` and ``archiver simulate``::

    sim = Simulator(SimConfig(seed=7, calls=20))
    async with sim.serve() as base_url:
        ...  # point a client at base_url
"""

from archiver.simulator.calls import SimCall
from archiver.simulator.config import Faults, SimConfig
from archiver.simulator.server import Simulator

__all__ = ["Faults", "SimCall", "SimConfig", "Simulator"]
