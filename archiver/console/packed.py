"""A call line as the console's index keeps it: raw DEFLATE against a fixed dictionary.

A manifest line is about 900 bytes of JSON whose field names and common
values repeat on every line; compressing each line on its own would find
little to share, but a preset dictionary holding a typical line gives DEFLATE
those repeats for free: about 240 bytes a line instead of 900, the largest
share of the index file (docs/performance.md). Each line stays its own value,
so a page of results decompresses 50 lines, not a block.

:data:`DICTIONARY` is part of the file's format: changing it changes
:data:`PACKING`, and an index packed otherwise is rebuilt (it is a cache).
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib

# Field names in the order ManifestEntry.build writes them, with the values most
# lines share; DEFLATE looks back from the end, so the likeliest matches come last.
_TEMPLATE = (
    '"direction":"outbound","direction_raw":"outbound","status":"NO ANSWER",'
    '"cause":"NO_ANSWER","provider":"epacific","content_type":"audio/mpeg",'
    '"checksum_type":"COMPOSITE","status":"BUSY","cause":"USER_BUSY",'
    '"status":"FAILED","status":"answered",".mp3","+07:00","T00:00:00",'
    '{"sip_call_id":"","cdr_id":"","provider":"cdr_v2","object_key":"recordings/2026/01/01/'
    '@10.0.0.1.wav","sha256":"","size":,"content_type":"audio/wav",'
    '"call_started_at":"2026-01-01T00:00:00+00:00","archived_at":"2026-01-01T00:00:00Z",'
    '"etag":null,"version_id":null,"checksum_sha256":null,"checksum_type":null,'
    '"etag":"\\"","version_id":"","checksum_sha256":"=","checksum_type":"FULL_OBJECT",'
    '"call_answered_at":"2026-01-01T00:00:00+07:00","call_ended_at":"2026-01-01T00:00:00+07:00",'
    '"direction":"inbound","direction_raw":"inbound","from_number":"09","to_number":"19001",'
    '"extension":"10","agent":"agent10","agent_name":"Nguyễn Thị ","customer_id":"KH",'
    '"duration":,"billsec":,"status":"ANSWERED","cause":"NORMAL_CLEARING"}'
    # A whole line last: the nearest, cheapest matches.
    '{"sip_call_id":"5f0c1e8a2b7d4c3e9a1f6b0d8e2c4a7b@10.0.0.1",'
    '"cdr_id":"3e1d2c4b-5a6f-4e7d-8c9b-0a1b2c3d4e5f","provider":"cdr_v2",'
    '"object_key":"recordings/2026/01/01/5f0c1e8a2b7d4c3e9a1f6b0d8e2c4a7b@10.0.0.1.wav",'
    '"sha256":"a449081fd7989253ce5ce4fe57be9b391b6120e073442732c9d220e34feb334e",'
    '"size":64000,"content_type":"audio/wav","call_started_at":"2026-01-01T01:34:33+00:00",'
    '"archived_at":"2026-01-01T01:35:00Z","etag":"\\"dab779b3296f8e7e52f41fcc50654172\\"",'
    '"version_id":null,"checksum_sha256":"Dq/GWkGTGbbK3liEtsi69ddHuwNe66G4qAzCApbYl+Q=",'
    '"checksum_type":"FULL_OBJECT","call_answered_at":"2026-01-01T08:34:40+07:00",'
    '"call_ended_at":"2026-01-01T08:36:02+07:00","direction":"outbound","direction_raw":"outbound",'
    '"from_number":"19001919","to_number":"0882486529","extension":"101","agent":"agent101",'
    '"agent_name":"Trần Thị Lan","customer_id":"KH3814","duration":89,"billsec":82,'
    '"status":"ANSWERED","cause":"NORMAL_CLEARING"}'
)
DICTIONARY = _TEMPLATE.encode("utf-8")
# Stored in the index file (PRAGMA user_version): a file packed with another dictionary
# or none is outdated.
PACKING = 2
# Raw DEFLATE (no zlib header or checksum: 6 bytes a line saved) in a 4 KiB window, which
# holds the dictionary and any line; the default 32 KiB window and memory level cost ten
# times the CPU per line (each line sets up a fresh compressor) for no smaller output.
_WBITS = -12
_MEM_LEVEL = 6


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


def pack(line: bytes | str) -> bytes:
    """One JSON line (its UTF-8 bytes), compressed against :data:`DICTIONARY` (pure)."""
    raw = line.encode("utf-8") if isinstance(line, str) else line
    checksum = _checksum_of(raw)
    if checksum is not None and b"\x00" not in raw and raw.count(checksum) == 1:
        raw = raw.replace(checksum, _ELIDED)
    packer = zlib.compressobj(
        6, zlib.DEFLATED, _WBITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, DICTIONARY
    )
    return packer.compress(raw) + packer.flush()


def unpack(packed: bytes) -> str:
    """The JSON line :func:`pack` was given (pure); ValueError if ``packed`` is damaged."""
    try:
        unpacker = zlib.decompressobj(_WBITS, zdict=DICTIONARY)
        raw = unpacker.decompress(packed) + unpacker.flush()
    except zlib.error as exc:
        raise ValueError(f"a packed line of the index is damaged: {exc}") from None
    if not unpacker.eof:
        raise ValueError("a packed line of the index is damaged: cut short")
    if _ELIDED in raw:
        checksum = _checksum_of(raw)
        if checksum is None:
            raise ValueError("a packed line of the index is damaged: no sha256")
        raw = raw.replace(_ELIDED, checksum)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"a packed line of the index is damaged: {exc}") from None
