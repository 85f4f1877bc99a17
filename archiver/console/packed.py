"""A call line as the console's index keeps it: Zstandard against a trained dictionary.

A manifest line is about 900 bytes of JSON whose field names and common
values repeat on every line; compressing each line on its own would find
little to share, but a dictionary trained on typical lines gives Zstandard
those repeats and, unlike DEFLATE's preset dictionary, the statistics of the
literals (hex digits, digits) too: about 165 bytes a line (DEFLATE against a
typical line: 240), at a tenth of the CPU (docs/performance.md). Each line
stays its own value, so a page of results decompresses 50 lines, not a block.

The dictionary (``packing.zdict``, made by ``python -m
tests.bench.packing_dictionary``) is part of the file's format: changing it
changes :data:`archiver.console.tables.FORMAT`, and an index packed otherwise is
rebuilt (it is a cache).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from importlib import resources

import zstandard

DICTIONARY_SIZE = 16 * 1024
# The dictionary's bytes (trained on lines of the simulator, another seed than any bench).
DICTIONARY = resources.files(__package__).joinpath("packing.zdict").read_bytes()
# Level 3: higher levels cost 3 to 40 times the CPU for 1 to 3% fewer bytes (measured).
_LEVEL = 3
_DICT = zstandard.ZstdCompressionDict(DICTIONARY, dict_type=zstandard.DICT_TYPE_FULLDICT)
_DICT.precompute_compress(level=_LEVEL)
# No magic number, dictionary id, content size or checksum in a frame: 10 bytes a line
# that the index does not need (its format says which dictionary; a damaged frame
# still fails to decode, and a line cut short is told by the frame not ending).
_PARAMS = zstandard.ZstdCompressionParameters.from_level(
    _LEVEL,
    format=zstandard.FORMAT_ZSTD1_MAGICLESS,
    write_content_size=False,
    write_checksum=False,
    write_dict_id=False,
)
# Compressors and decompressors are not safe to share between threads (the event
# loop's and SQLite's both read lines): one of each per thread.
_LOCAL = threading.local()


# S3's FULL_OBJECT ChecksumSHA256 is the recording's SHA-256 again, in base64: 44
# bytes no compressor can shrink. When a line's checksum is exactly that, it is kept as
# one NUL byte (which JSON never holds raw) and put back from "sha256".
_SHA = re.compile(rb'"sha256":"([0-9a-f]{64})"')
_ELIDED = b'"checksum_sha256":"\x00"'


def _checksum_of(line: bytes) -> bytes | None:
    found = _SHA.search(line)
    if found is None:
        return None
    return b'"checksum_sha256":"' + base64.b64encode(binascii.unhexlify(found[1])) + b'"'


def prepared(raw: bytes) -> bytes:
    """A line as it is compressed: S3's checksum elided when it is the recording's own
    SHA-256 (pure; what the dictionary was trained on)."""
    checksum = _checksum_of(raw)
    if checksum is not None and b"\x00" not in raw and raw.count(checksum) == 1:
        return raw.replace(checksum, _ELIDED)
    return raw


def _compressor() -> zstandard.ZstdCompressor:
    found: zstandard.ZstdCompressor | None = getattr(_LOCAL, "compressor", None)
    if found is None:
        found = _LOCAL.compressor = zstandard.ZstdCompressor(
            dict_data=_DICT, compression_params=_PARAMS
        )
    return found


def _decompressor() -> zstandard.ZstdDecompressor:
    found: zstandard.ZstdDecompressor | None = getattr(_LOCAL, "decompressor", None)
    if found is None:
        found = _LOCAL.decompressor = zstandard.ZstdDecompressor(
            dict_data=_DICT, format=zstandard.FORMAT_ZSTD1_MAGICLESS
        )
    return found


def pack(line: bytes | str) -> bytes:
    """One JSON line (its UTF-8 bytes), compressed against :data:`DICTIONARY` (pure)."""
    raw = line.encode("utf-8") if isinstance(line, str) else line
    return _compressor().compress(prepared(raw))


def unpack(packed: bytes) -> str:
    """The JSON line :func:`pack` was given (pure); ValueError if ``packed`` is damaged."""
    unpacker = _decompressor().decompressobj()
    try:
        raw = unpacker.decompress(packed)
    except zstandard.ZstdError as exc:
        raise ValueError(f"a packed line of the index is damaged: {exc}") from None
    if not unpacker.eof:
        raise ValueError("a packed line of the index is damaged: cut short")
    if unpacker.unused_data:
        raise ValueError("a packed line of the index is damaged: bytes after its end")
    if _ELIDED in raw:
        checksum = _checksum_of(raw)
        if checksum is None:
            raise ValueError("a packed line of the index is damaged: no sha256")
        raw = raw.replace(_ELIDED, checksum)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"a packed line of the index is damaged: {exc}") from None
