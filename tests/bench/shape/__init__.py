"""The archive of five years, as ``run`` writes it: a generator and its measurements.

``python -m tests.bench.shape generate --calls N --dir DIR [--storage local|s3]``
writes the archive (no audio fetched: small objects with their true hashes);
``python -m tests.bench.shape measure --dir DIR`` times what reads it. See
docs/development.md ("The archive of five years") and docs/performance.md.
"""
