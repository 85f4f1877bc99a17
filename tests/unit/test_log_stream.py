"""Log lines go to whatever ``sys.stderr`` is when they are written.

A live progress bar replaces ``sys.stderr`` with a writer that prints above the
bar; a handler that kept the original stream broke the bar with every line.
"""

from __future__ import annotations

import io
import logging
import sys

import pytest

from archiver.logs import setup_logging


def test_a_log_line_follows_a_replaced_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    setup_logging(fmt="text")
    try:
        redirected = io.StringIO()
        monkeypatch.setattr(sys, "stderr", redirected)
        logging.getLogger("archiver.manifest").info("wrote a batch")
        assert "INFO archiver.manifest: wrote a batch" in redirected.getvalue()
    finally:
        logging.getLogger().handlers.clear()
