"""Audio type detection from a recording's first bytes (pure).

Providers' Content-Type headers are unreliable (``application/octet-stream``,
or ``text/html`` on an error page served with 200), so the archiver trusts
the bytes: :func:`sniff` reads the magic numbers, and anything it does not
recognise as audio is not archived as a recording.
"""

from __future__ import annotations

# Enough bytes for every check below.
SNIFF_BYTES = 16

# Extension -> content type, for the types sniff() knows; also what the local
# store reports, since a file keeps no content type of its own.
CONTENT_TYPES: dict[str, str] = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "m4a": "audio/mp4",
}


def _is_mpeg_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits and no reserved field values."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    sample_rate = (head[2] >> 2) & 0b11
    # Layer 00 is reserved, and it is what AAC's ADTS headers carry: not MP3.
    return version != 0b01 and layer != 0b00 and bitrate != 0b1111 and sample_rate != 0b11


def sniff(head: bytes) -> tuple[str, str] | None:
    """(content_type, extension) for the audio whose first bytes are ``head``, else None.

    Knows WAV (RIFF/RF64 ... WAVE), MP3 (an ID3 tag or an MPEG frame header),
    Ogg, FLAC and M4A (an ISO-BMFF ``ftyp`` box). HTML, JSON, empty or short
    input gives None. Pass at least :data:`SNIFF_BYTES` bytes when there are.
    """
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return CONTENT_TYPES["wav"], "wav"
    if head[:3] == b"ID3" or _is_mpeg_frame(head):
        return CONTENT_TYPES["mp3"], "mp3"
    if head[:4] == b"OggS":
        return CONTENT_TYPES["ogg"], "ogg"
    if head[:4] == b"fLaC":
        return CONTENT_TYPES["flac"], "flac"
    if head[4:8] == b"ftyp":
        return CONTENT_TYPES["m4a"], "m4a"
    return None
