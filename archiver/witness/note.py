"""C2SP signed notes with timestamped Ed25519 cosignatures (pure).

A witness key signs a note's text as a *cosignature* (c2sp.org/tlog-cosignature,
signature type ``0x04``): the signed message is ``cosignature/v1``, a ``time``
line, then the note text; the signature is the 8-byte big-endian POSIX time
followed by the 64-byte Ed25519 signature, behind the 4-byte key id. Keys are
written as in Go's ``golang.org/x/mod/sumdb/note``:

    PRIVATE+KEY+<name>+<key id hex>+<base64(0x04 || 32-byte seed)>   (the signer, secret)
    <name>+<key id hex>+<base64(0x04 || 32-byte public key)>           (the verifier key)

The Ed25519 arithmetic is the ``cryptography`` package's (pyca, OpenSSL's).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

COSIGNATURE = 0x04
DASH = "\u2014"
# A note is a few lines per writer; anything far larger is not one of ours.
MAX_NOTE_BYTES = 256 * 1024
MAX_SIGNATURES = 16
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class NoteError(ValueError):
    """A note or key that cannot be read or does not verify (one line)."""


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise NoteError(f"a key name is one word without spaces or '+': {name!r}")
    return name


def _key_fields(
    text: str, *, malformed: str, not_base64: str, wrong_type: str
) -> tuple[str, str, int, bytes]:
    """NAME+KEYID+BASE64(0x04 || 32 bytes): the name, the id as written and as a number,
    and the 32 key bytes; NoteError with the caller's words (never quoting the key)."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError(malformed)
    name, hexid, material = parts
    _check_name(name)
    try:
        raw = base64.b64decode(material, validate=True)
        wanted = int(hexid, 16)
    except (binascii.Error, ValueError):
        raise NoteError(not_base64) from None
    if len(raw) != 33 or raw[0] != COSIGNATURE:
        raise NoteError(wrong_type)
    return name, hexid, wanted, raw[1:]


def key_id(name: str, public: bytes) -> int:
    """The 32-bit key id of a cosigner key (C2SP: SHA-256 of name, newline, type, key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([COSIGNATURE]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """A witness's public key: checks its cosignatures."""

    name: str
    public: bytes

    @property
    def id(self) -> int:
        """The key id its signature lines carry."""
        return key_id(self.name, self.public)

    def vkey(self) -> str:
        """The verifier key as text (what an auditor passes to ``verify --witness-key``)."""
        material = base64.b64encode(bytes([COSIGNATURE]) + self.public).decode()
        return f"{self.name}+{self.id:08x}+{material}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Read a verifier key; NoteError if it is not one."""
        name, hexid, wanted, key = _key_fields(
            text.strip(),
            malformed="a witness verifier key is NAME+KEYID+BASE64",
            not_base64="a witness verifier key is NAME+KEYID+BASE64",
            wrong_type="the witness verifier key is not an Ed25519 cosigner key (type 0x04)",
        )
        verifier = cls(name, key)
        if verifier.id != wanted or len(hexid) != 8:
            raise NoteError("the witness verifier key's id does not match its key")
        return verifier


@dataclass(frozen=True)
class Signer:
    """A witness's private key: makes cosignatures. Never logged, never stored in the archive."""

    name: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key named ``name``."""
        return cls(_check_name(name), Ed25519PrivateKey.generate())

    @property
    def verifier(self) -> Verifier:
        """Its public half."""
        return Verifier(self.name, _public_bytes(self.private.public_key()))

    def to_text(self) -> str:
        """The key file's one line (secret)."""
        seed = self.private.private_bytes_raw()
        material = base64.b64encode(bytes([COSIGNATURE]) + seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.verifier.id:08x}+{material}"

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Read a key file's line; NoteError (which never quotes the key) if it is not one."""
        text = text.strip()
        if not text.startswith(_PRIVATE_PREFIX):
            raise NoteError("not a witness key file (it must start with PRIVATE+KEY+)")
        name, _, wanted, key = _key_fields(
            text[len(_PRIVATE_PREFIX) :],
            malformed="not a witness key file (PRIVATE+KEY+NAME+KEYID+BASE64)",
            not_base64="not a witness key file (its key is not base64)",
            wrong_type="not an Ed25519 witness key (type 0x04)",
        )
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(key))
        if signer.verifier.id != wanted:
            raise NoteError("the witness key file is damaged (its id does not match its key)")
        return signer

    def cosign(self, text: str, when: datetime) -> str:
        """A signature line (with its newline) over ``text`` at ``when``."""
        stamp = int(when.timestamp())
        signed = _message(text, stamp)
        signature = struct.pack(">IQ", self.verifier.id, stamp) + self.private.sign(signed)
        return f"{DASH} {self.name} {base64.b64encode(signature).decode()}\n"


def _message(text: str, stamp: int) -> bytes:
    return f"cosignature/v1\ntime {stamp}\n{text}".encode()


@dataclass(frozen=True)
class Note:
    """A verified note: its text and when the trusted key cosigned it."""

    text: str
    signed_at: datetime
    signer: str


def sign_note(text: str, signer: Signer, when: datetime) -> str:
    """The signed note: ``text`` (ending in a newline), a blank line, the cosignature."""
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("a note's text ends in a newline and has no blank line")
    return f"{text}\n{signer.cosign(text, when)}"


def open_note(data: bytes, verifiers: list[Verifier]) -> Note:
    """Check a signed note against the trusted keys; its text if one of them signed it.

    As the signed-note spec says: signatures of unknown keys are ignored; one by
    a known key that fails to verify rejects the note; no verified one rejects it.
    """
    if len(data) > MAX_NOTE_BYTES:
        raise NoteError(f"{len(data)} bytes: larger than any checkpoint")
    try:
        whole = data.decode()
    except UnicodeDecodeError:
        raise NoteError("not UTF-8") from None
    if any(c < " " and c != "\n" for c in whole):
        raise NoteError("control characters")
    text, sep, signatures = whole.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise NoteError("not a signed note (no blank line before signatures)")
    text += "\n"
    lines = signatures[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    known = {(v.name, v.id): v for v in verifiers}
    found: Note | None = None
    for line in lines:
        dash, _, rest = line.partition(" ")
        name, _, b64 = rest.partition(" ")
        if dash != DASH or not name or not b64:
            raise NoteError("a signature line is malformed")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise NoteError("a signature is not base64") from None
        if len(raw) < 4:
            raise NoteError("a signature is too short")
        verifier = known.get((name, int.from_bytes(raw[:4], "big")))
        if verifier is None:
            continue
        if len(raw) != 4 + 8 + 64:
            raise NoteError(f"the signature of {name} is not an Ed25519 cosignature")
        (stamp,) = struct.unpack(">Q", raw[4:12])
        try:
            signed_at = datetime.fromtimestamp(stamp, UTC)
        except (OverflowError, ValueError, OSError):
            raise NoteError(f"the cosignature time of {name} is out of range") from None
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public).verify(
                raw[12:], _message(text, stamp)
            )
        except InvalidSignature:
            raise NoteError(f"the signature of {name} does not verify") from None
        found = Note(text, signed_at, name)
    if found is None:
        raise NoteError("signed by no trusted witness key")
    return found
