"""What the test tiers share, in one place.

- :mod:`tests.support.cli`: the CLI as a subprocess and the one builder of its
  environment (``archiver_env``).
- :mod:`tests.support.fixtures`: the ``sim`` fixture, a simulated provider on
  loopback configured by ``@pytest.mark.sim(...)``.
- :mod:`tests.support.web`: a throwaway aiohttp server on a free loopback port.
"""
