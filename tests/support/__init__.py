"""What the test tiers share, in one place.

- :mod:`tests.support.cli`: the CLI as a subprocess and the one builder of its
  environment (``archiver_env``).
- :mod:`tests.support.fixtures`: the ``sim`` fixture, a simulated provider on
  loopback configured by ``@pytest.mark.sim(...)``.
- :mod:`tests.support.web`: a throwaway aiohttp server on a free loopback port.
- :mod:`tests.support.tsa`: a local RFC 3161 time-stamping authority (OpenSSL's
  ``ts -reply`` behind such a server) and the test PKI it signs with.
"""
