"""The first bytes a recording is sniffed by, from the chunks it arrived in (pure)."""

from __future__ import annotations

import pytest

from archiver.pipeline.transfer import SNIFF_BYTES, _head

BODY = bytes(range(256)) * 4


@pytest.mark.parametrize("sizes", [[1024], [1] * 100, [3, 61, 500], [64, 960], [10, 10], [0, 70]])
def test_the_head_is_the_bodys_first_bytes_however_it_was_cut(sizes: list[int]) -> None:
    chunks, at = [], 0
    for size in sizes:
        chunks.append(BODY[at : at + size])
        at += size
    assert _head(chunks) == BODY[: min(SNIFF_BYTES, at)]
