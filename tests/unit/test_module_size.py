"""Every module of the package stays under 400 lines: one grown past it is split by
concern (as storage/s3.py was into s3_client, s3_existing...), not left to grow."""

from __future__ import annotations

from pathlib import Path

import archiver

PACKAGE = Path(archiver.__file__).parent
LIMIT = 400


def test_every_module_is_under_the_limit() -> None:
    long = {
        path.relative_to(PACKAGE).as_posix(): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) >= LIMIT
    }
    assert long == {}
