"""Recording bytes: valid WAV or MP3, a pure function of (seed, call), made fast.

Benchmarks stream gigabytes, so no byte is computed one at a time: each seed
gets one pseudo-random 64 KiB block (and, for MP3, a run of frames built from
it) and a recording's body is a rotated slice of that pattern, repeated. Any
byte range of any recording is a few slices, so the server streams without
ever holding a whole file.
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Iterator
from typing import Literal

CHUNK_SIZE = 64 * 1024
"""Size of the chunks recordings are streamed in."""

WAV_HEADER_SIZE = 44
WAV_RATE = 8000  # 8 kHz, 16-bit, mono: 16 000 bytes a second, like call recorders

MP3_FRAME_HEADER = b"\xff\xfb\x90\x00"  # MPEG-1 Layer III, 128 kbps, 44.1 kHz, no padding
MP3_FRAME_SIZE = 417  # 144 * 128000 / 44100, rounded down (no padding bit)
# Enough frames that one MP3 pattern period is longer than a chunk, so a chunk
# is never more than two slices.
_MP3_PATTERN_FRAMES = 160

BYTES_PER_SECOND = 16_000
"""Both formats come out at 16 kB/s (WAV 8 kHz 16-bit mono; MP3 128 kbps)."""


@functools.lru_cache(maxsize=8)
def _patterns(seed: int) -> tuple[bytes, bytes]:
    """The doubled WAV and MP3 body patterns of a seed.

    Doubling lets any window of up to one period start anywhere in the first
    copy and still be a single slice.
    """
    block = random.Random(seed).randbytes(CHUNK_SIZE)
    doubled = block + block
    payload = MP3_FRAME_SIZE - len(MP3_FRAME_HEADER)
    offsets = ((k * payload) % CHUNK_SIZE for k in range(_MP3_PATTERN_FRAMES))
    frames = b"".join(MP3_FRAME_HEADER + doubled[o : o + payload] for o in offsets)
    return doubled, frames + frames


def wav_header(size: int) -> bytes:
    """The 44-byte RIFF/WAVE PCM header of a WAV file of ``size`` bytes in all."""
    data_size = max(size - WAV_HEADER_SIZE, 0)
    return (
        b"RIFF"
        + struct.pack("<I", max(size - 8, 0))
        + b"WAVE"
        + b"fmt "
        # chunk size, PCM, mono, rate, byte rate, block align, bits per sample
        + struct.pack("<IHHIIHH", 16, 1, 1, WAV_RATE, WAV_RATE * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_size)
    )


def id3_tag(title: str) -> bytes:
    """A small ID3v2.3 tag with one title frame."""
    text = b"\x00" + title.encode("latin-1", "replace")  # encoding byte 0: ISO-8859-1
    frame = b"TIT2" + struct.pack(">I", len(text)) + b"\x00\x00" + text
    size = len(frame)
    # ID3 sizes are "syncsafe": 7 bits per byte, so no byte looks like a frame sync.
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x03\x00\x00" + syncsafe + frame


class RecordingBytes:
    """The bytes of one recording, readable by range without building the file."""

    def __init__(
        self, seed: int, index: int, fmt: Literal["wav", "mp3"], size: int, title: str
    ) -> None:
        self.size = size
        rng = random.Random(f"sim-audio:{seed}:{index}")
        wav_pattern, mp3_pattern = _patterns(seed)
        if fmt == "wav":
            self._header = wav_header(size)
            self._pattern = wav_pattern
            self._period = CHUNK_SIZE
            self._rotation = rng.randrange(CHUNK_SIZE)
        else:
            self._header = id3_tag(title)
            self._pattern = mp3_pattern
            self._period = MP3_FRAME_SIZE * _MP3_PATTERN_FRAMES
            # Rotate by whole frames so the body always starts on a frame sync.
            self._rotation = rng.randrange(_MP3_PATTERN_FRAMES) * MP3_FRAME_SIZE

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes [start, end) of the recording (clamped to its size)."""
        return b"".join(self.iter_chunks(start, end))

    def iter_chunks(
        self, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Bytes [start, end) in chunks of at most ``chunk_size`` bytes."""
        end = self.size if end is None else min(end, self.size)
        chunk_size = min(chunk_size, self._period)
        pos = max(start, 0)
        header_len = len(self._header)
        while pos < end:
            stop = min(pos + chunk_size, end)
            if pos < header_len:
                head = self._header[pos : min(stop, header_len)]
                yield head + self._body(header_len, stop)
            else:
                yield self._body(pos, stop)
            pos = stop

    def _body(self, start: int, stop: int) -> bytes:
        """Body bytes for file positions [start, stop), at most one period long."""
        if stop <= start:
            return b""
        offset = (start - len(self._header) + self._rotation) % self._period
        return self._pattern[offset : offset + (stop - start)]
