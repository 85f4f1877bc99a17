"""Audio type detection from magic numbers."""

from __future__ import annotations

import pytest

from archiver.storage.audio import CONTENT_TYPES, sniff

WAV = b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (WAV, ("audio/wav", "wav")),
        (b"RF64\xff\xff\xff\xffWAVEds64", ("audio/wav", "wav")),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", ("audio/mpeg", "mp3")),
        # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz
        (b"\xff\xfb\x90\x64\x00\x00", ("audio/mpeg", "mp3")),
        # MPEG-2 Layer III, 8 kHz (telephony)
        (b"\xff\xf3\x18\xc4\x00\x00", ("audio/mpeg", "mp3")),
        (b"OggS\x00\x02\x00\x00\x00\x00\x00\x00", ("audio/ogg", "ogg")),
        (b"fLaC\x00\x00\x00\x22", ("audio/flac", "flac")),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", ("audio/mp4", "m4a")),
    ],
)
def test_known_audio(head: bytes, expected: tuple[str, str]) -> None:
    assert sniff(head) == expected
    assert CONTENT_TYPES[expected[1]] == expected[0]


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\xff",
        b"\xff\xfb",  # too short to check the frame header
        b"<!DOCTYPE html><html>",
        b"<html><body>404</body></html>",
        b'{"error": "not found"}',
        b"RIFF\x24\x08\x00\x00AVI LIST",
        b"\xff\xf1\x50\x80\x00\x1f",  # AAC ADTS: layer bits 00
        b"\xff\xfb\xf0\x64",  # bitrate index 1111 is invalid
        b"\xff\xfb\x9c\x64",  # sample-rate index 11 is reserved
        b"\xff\xeb\x90\x64",  # MPEG version 01 is reserved
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # a JPEG
        b"PK\x03\x04",
    ],
)
def test_not_audio(head: bytes) -> None:
    assert sniff(head) is None
