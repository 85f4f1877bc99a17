"""The keyed hash and the sealed copy of one phone number (pure; pyca ``cryptography``).

HMAC-SHA256 and AES-256-GCM from ``cryptography`` (pyca, over OpenSSL; already a
dependency for the witness keys) rather than hand-written code. A sealed copy is
``v1.`` then the URL-safe base64 of a random 96-bit nonce and the ciphertext with
its 128-bit tag. Its associated data is the line's identity and the side of the
call, so a copy moved to another line, or from caller to callee, is refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
_NONCE_BYTES = 12
_PREFIX = "v1."
# A sealed phone number is short; anything longer is not one of ours.
MAX_SEALED_CHARS = 512


class SealError(ValueError):
    """A sealed copy that cannot be opened: damaged, moved, or under another key."""


def keyed_hash(search_key: bytes, number_key: str) -> str:
    """HMAC-SHA256 of a normalized number (``phone_key``), as 64 hex digits."""
    _check_key(search_key)
    return hmac.new(search_key, b"phone:" + number_key.encode(), sha256).hexdigest()


def associated_data(provider: str, cdr_id: str, sip_call_id: str, side: str) -> bytes:
    """What a sealed copy is bound to: the call line's identity and its side."""
    parts = ("archiver-number-v1", provider, cdr_id, sip_call_id, side)
    return "\x00".join(parts).encode()


def seal(subject_key: bytes, number: str, aad: bytes) -> str:
    """The number as written, encrypted and authenticated under ``subject_key``."""
    _check_key(subject_key)
    nonce = os.urandom(_NONCE_BYTES)
    body = AESGCM(subject_key).encrypt(nonce, number.encode(), aad)
    return _PREFIX + base64.urlsafe_b64encode(nonce + body).decode().rstrip("=")


def open_sealed(subject_key: bytes, sealed: str, aad: bytes) -> str:
    """The number of a sealed copy; SealError (never quoting key or text) if it is not
    intact, belongs to another line or side, or was sealed under another key."""
    _check_key(subject_key)
    if not isinstance(sealed, str) or not sealed.startswith(_PREFIX):
        raise SealError("not a sealed number (v1)")
    if len(sealed) > MAX_SEALED_CHARS:
        raise SealError("a sealed number too long")
    text = sealed[len(_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SealError("a sealed number that is not base64") from None
    if len(raw) < _NONCE_BYTES + 16:
        raise SealError("a sealed number too short")
    try:
        plain = AESGCM(subject_key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)
    except InvalidTag:
        raise SealError(
            "a sealed number that does not open (altered, moved or another key)"
        ) from None
    try:
        return plain.decode()
    except UnicodeDecodeError:
        raise SealError("a sealed number that is not text") from None


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"a key must be {KEY_BYTES} bytes")
