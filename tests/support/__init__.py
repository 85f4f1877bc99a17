"""What the test tiers share, in one place.

- :mod:`tests.support.cli`: the CLI as a subprocess and the one builder of its
  environment (``archiver_env``).
- :mod:`tests.support.fixtures`: the ``sim`` fixture, a simulated provider on
  loopback configured by ``@pytest.mark.sim(...)``.
- :mod:`tests.support.seaweed`: a throwaway SeaweedFS S3 server on loopback, its
  admin client, and the types of the bucket fixtures of ``tests/conftest.py``.
- :mod:`tests.support.postgres`: a throwaway PostgreSQL cluster on loopback.
- :mod:`tests.support.pipeline`: settings, a backfill, the archive read back and
  the exactly-once check, for tests that drive the pipeline in process.
- :mod:`tests.support.stepped`: the injected clock (``Clock``) and ``until``,
  for tests that wait on a condition instead of a fixed time.
- :mod:`tests.support.legacy`: an archive as written before the manifest chain
  (what ``archiver seal`` is for).
- :mod:`tests.support.web`: a throwaway aiohttp server on a free loopback port.
- :mod:`tests.support.tsa`: a local RFC 3161 time-stamping authority (OpenSSL's
  ``ts -reply`` behind such a server) and the test PKI it signs with.
"""
