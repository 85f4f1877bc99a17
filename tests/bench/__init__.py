"""Benchmarks: the archiver against rclone and a bare PUT loop, memory, and state scale.

Not part of the test run (pyproject ignores ``tests/bench``). Start everything with
``.venv/bin/python -m tests.bench [--quick]``; see ``tests/bench/__main__.py``.
"""
