"""RFC 3161 trusted timestamps: a time-stamping authority (TSA) vouches that some
bytes (the manifest chain's head) existed at a time it signs.

A token is asked over HTTP (``POST``, ``application/timestamp-query``) with a
deadline and a cap on the answer's size, and checked on arrival; ``verify``
checks it again later. A token is accepted only if:

- the TSA granted it (PKIStatus granted, not "granted with modifications");
- its message imprint is the SHA-256 of the stamped bytes;
- its nonce is the one we sent (on arrival only: a replayed old answer is refused);
- its signature verifies with the TSA certificate it embeds, that certificate
  carries the critical timeStamping purpose, and it chains up to a certificate of
  the configured CA bundle, valid at the token's genTime.

Parsing and the signature and chain checks are the ``rfc3161-client`` library's
(Trail of Bits; the one sigstore-python uses), not ASN.1 written here.

A token is stored as the TSA sent it (DER, ``.tsr``), written once and never
overwritten, under a key the caller chooses beside what it stamps, so an
auditor can also check it with standard tools::

    openssl ts -verify -data STAMPED_FILE -in TOKEN.tsr -CAfile CA_BUNDLE
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp
from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)
from rfc3161_client.verify import SHA256_OID

from archiver.errors import ConfigError, TimestampInvalidError, TimestampUnavailableError
from archiver.http import USER_AGENT, redact_url
from archiver.settings import ENV_PREFIX, TimestampSettings
from archiver.storage.base import ObjectExistsError, ObjectStore

log = logging.getLogger("archiver.timestamping")

STAMP_SUFFIX = ".tsr"
QUERY_CONTENT_TYPE = "application/timestamp-query"
REPLY_CONTENT_TYPE = "application/timestamp-reply"
# A real token (one signature and a certificate or a short chain) is a few KiB;
# anything past this is not a token and is not read further.
MAX_REPLY_BYTES = 256 * 1024
_CHUNK = 16 * 1024
UNPARSABLE = "not a timestamp token (it does not parse as DER)"
_SHA256 = x509.ObjectIdentifier(SHA256_OID)


@dataclass(frozen=True)
class Timestamp:
    """A verified token: the TSA's DER answer as received, and what it says."""

    token: bytes
    gen_time: datetime
    serial_number: int
    # The TSA certificate's subject, as ``CN=...``: who vouches for the time.
    tsa: str

    def describe_time(self) -> str:
        """``genTime by TSA``, for messages."""
        return f"{self.gen_time.isoformat().replace('+00:00', 'Z')} by {self.tsa}"


class TokenState(enum.Enum):
    """What ``verify`` found for a head's token."""

    VALID = "valid"
    MISSING = "missing"
    INVALID = "invalid"
    # A token is there, but no CA bundle is configured to check it against.
    UNCHECKED = "unchecked"


@dataclass(frozen=True)
class TokenCheck:
    """The outcome of checking the token of one chain head."""

    state: TokenState
    key: str
    stamp: Timestamp | None = None
    reason: str | None = None

    def describe(self) -> str:
        """One line for the verify report."""
        if self.state is TokenState.VALID and self.stamp is not None:
            return f"time-stamped at {self.stamp.describe_time()} ({self.key})"
        if self.state is TokenState.MISSING:
            return f"no timestamp token ({self.key} is absent; one is asked at the next write)"
        if self.state is TokenState.UNCHECKED:
            return (
                f"timestamp token {self.key} not checked: "
                f"{ENV_PREFIX}TIMESTAMP__CA_BUNDLE is not set"
            )
        return f"timestamp token {self.key} is INVALID: {self.reason}"


def load_anchors(path: Path) -> list[x509.Certificate]:
    """The trusted certificates of a PEM bundle; ConfigError if there are none."""
    variable = f"{ENV_PREFIX}TIMESTAMP__CA_BUNDLE"
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path} ({exc.strerror})") from None
    try:
        anchors = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError(f"{variable}: {path} holds no PEM certificate") from None
    return anchors


def _element(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    """(start of contents, end) of the DER element with ``tag`` at ``pos``; ValueError if not."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise ValueError("unexpected element")
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or start + count > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > len(data):
        raise ValueError("truncated")
    return start, start + length


def _children(data: bytes, start: int, end: int) -> list[bytes]:
    out = []
    while start < end:
        _, child_end = _element(data, start, data[start])
        out.append(data[start:child_end])
        start = child_end
    return out


def certificates_in_der_order(token: bytes) -> bytes:
    """The token with its embedded certificates sorted as DER requires of a SET OF.

    Some TSAs (OpenSSL's ``ts`` with a ``certs`` chain among them) send the
    certificates in chain order, which the library's strict DER parser refuses.
    That set is outside what the TSA signs (the signed attributes cover the
    TSTInfo), so putting it in order changes no proof; only the element
    boundaries are read here, the parsing proper stays the library's. Returns
    ``token`` unchanged when it does not have the expected shape.
    """
    try:
        # TimeStampResp SEQUENCE { status SEQUENCE, timeStampToken ContentInfo }
        start, end = _element(token, 0, 0x30)
        _, status_end = _element(token, start, 0x30)
        # ContentInfo SEQUENCE { contentType OID, [0] EXPLICIT SignedData }
        start, _ = _element(token, status_end, 0x30)
        _, oid_end = _element(token, start, 0x06)
        start, _ = _element(token, oid_end, 0xA0)
        # SignedData SEQUENCE { version, digestAlgorithms SET, encapContentInfo, [0] certs }
        start, _ = _element(token, start, 0x30)
        for tag in (0x02, 0x31, 0x30):
            _, start = _element(token, start, tag)
        certs_start, certs_end = _element(token, start, 0xA0)
        certs = _children(token, certs_start, certs_end)
    except (ValueError, IndexError):
        return token
    return token[:certs_start] + b"".join(sorted(certs)) + token[certs_end:]


def _subject(response: TimeStampResponse) -> str:
    for der in response.signed_data.certificates:
        cert = x509.load_der_x509_certificate(der)
        if any(
            cert.issuer == si.issuer and cert.serial_number == si.serial_number
            for si in response.signed_data.signer_infos
        ):
            return cert.subject.rfc4514_string()
    return "an unnamed TSA"


def verify_token(
    token: bytes, data: bytes, anchors: list[x509.Certificate], *, nonce: int | None = None
) -> Timestamp:
    """Check ``token`` against ``data`` and the trusted ``anchors``; its contents if valid.

    Raises TimestampInvalidError, one line saying what is wrong.
    """
    return verify_token_digest(token, hashlib.sha256(data).digest(), anchors, nonce=nonce)


def verify_token_digest(
    token: bytes, digest: bytes, anchors: list[x509.Certificate], *, nonce: int | None = None
) -> Timestamp:
    """:func:`verify_token` for bytes known by their SHA-256 ``digest``."""
    try:
        response = decode_timestamp_response(token)
    except ValueError:
        try:
            response = decode_timestamp_response(certificates_in_der_order(token))
        except ValueError:
            raise TimestampInvalidError(UNPARSABLE) from None
    if response.status != PKIStatus.GRANTED:
        texts = "; ".join(response.status_string) or "no reason given"
        raise TimestampInvalidError(f"the TSA refused: status {response.status} ({texts})")
    info = response.tst_info
    if info.message_imprint.hash_algorithm != _SHA256 or info.message_imprint.message != digest:
        raise TimestampInvalidError("it stamps other bytes (its message imprint differs)")
    if nonce is not None and info.nonce != nonce:
        raise TimestampInvalidError("its nonce is not the one sent (a replayed answer)")
    builder = VerifierBuilder(nonce=nonce)
    for anchor in anchors:
        builder = builder.add_root_certificate(anchor)
    try:
        builder.build().verify(response, digest)
    except VerificationError as exc:
        text = str(exc)
        if text.startswith("Error while verifying certificates"):
            text = "its signature does not verify up to a certificate of the CA bundle"
        raise TimestampInvalidError(text) from None
    return Timestamp(
        token=token,
        gen_time=info.gen_time,
        serial_number=info.serial_number,
        tsa=_subject(response),
    )


class Stamper:
    """Asks the configured TSA for tokens; one per chain head written."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: TimestampSettings,
        anchors: list[x509.Certificate],
    ) -> None:
        if settings.url is None:
            raise ConfigError(f"{ENV_PREFIX}TIMESTAMP__URL: not set")
        self._session = session
        self._url = settings.url
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout)
        self.anchors = anchors
        self.endpoint = f"TSA {redact_url(settings.url)}"

    async def stamp(self, data: bytes) -> Timestamp:
        """A verified token for ``data`` (its SHA-256 is what the TSA signs).

        Raises TimestampUnavailableError when the TSA cannot be reached or does
        not answer in time, TimestampInvalidError when its answer is not a valid
        token for this request.
        """
        request = (
            TimestampRequestBuilder()
            .data(data)
            .hash_algorithm(HashAlgorithm.SHA256)
            .nonce(nonce=True)
            # The TSA's certificate goes into the token, so it can be checked
            # later from the bundle's CA alone.
            .cert_request(cert_request=True)
            .build()
        )
        body = await self._post(request.as_bytes())
        return verify_token(body, data, self.anchors, nonce=request.nonce)

    async def _post(self, query: bytes) -> bytes:
        headers = {"Content-Type": QUERY_CONTENT_TYPE, "User-Agent": USER_AGENT}
        try:
            async with self._session.post(
                self._url,
                data=query,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                if resp.status != 200:
                    raise TimestampUnavailableError(f"{self.endpoint} answered HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > MAX_REPLY_BYTES:
                    raise TimestampInvalidError(self._too_large())
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                    if size > MAX_REPLY_BYTES:
                        raise TimestampInvalidError(self._too_large())
                    chunks.append(chunk)
        except TimeoutError:
            raise TimestampUnavailableError(f"{self.endpoint} did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise TimestampUnavailableError(
                f"{self.endpoint}: connection failed ({type(exc).__name__})"
            ) from None
        return b"".join(chunks)

    def _too_large(self) -> str:
        return f"{self.endpoint} answered more than {MAX_REPLY_BYTES} bytes: not a token"


def verify_anchors(settings: TimestampSettings) -> list[x509.Certificate] | None:
    """The anchors ``verify`` checks tokens against; None without a CA bundle."""
    return load_anchors(settings.ca_bundle) if settings.ca_bundle is not None else None


@asynccontextmanager
async def open_stamper(settings: TimestampSettings) -> AsyncIterator[Stamper | None]:
    """A stamper with its own HTTP session for the block; None when no TSA is set."""
    if settings.url is None:
        yield None
        return
    anchors = verify_anchors(settings)
    if anchors is None:
        raise ConfigError(f"{ENV_PREFIX}TIMESTAMP__CA_BUNDLE: required with the URL")
    async with aiohttp.ClientSession() as session:
        yield Stamper(session, settings, anchors)


async def stamp_and_store(
    store: ObjectStore, stamper: Stamper, data: bytes, key: str
) -> Timestamp | None:
    """Stamp ``data`` (what a chain head names) and store the token at ``key``.

    Returns None if no token could be had.

    A TSA that is down or answers badly never stops the archive: the head stays
    without a token (``verify`` reports it missing) and the next head written,
    which chains over this one, is stamped in its turn.
    """
    digest = hashlib.sha256(data).hexdigest()
    try:
        stamp = await stamper.stamp(data)
    except (TimestampUnavailableError, TimestampInvalidError) as exc:
        log.warning("chain head %s not time-stamped: %s", digest[:16], exc)
        return None
    try:
        await store.put_bytes(
            key,
            stamp.token,
            sha256=hashlib.sha256(stamp.token).hexdigest(),
            content_type=REPLY_CONTENT_TYPE,
        )
    except ObjectExistsError:
        # This head was stamped before (a re-run after a crash): the first token
        # stands, and is the earlier proof.
        log.info("chain head %s already time-stamped", digest[:16])
    return stamp


async def read_token(store: ObjectStore, key: str) -> bytes | None:
    """The stored token under ``key``, or None if absent.

    Raises TimestampInvalidError, without reading it, for an object larger than
    any token.
    """
    found = await store.head(key)
    if found is None:
        return None
    if found.size > MAX_REPLY_BYTES:
        raise TimestampInvalidError(f"{found.size} bytes: larger than any token")
    chunks: list[bytes] = []
    try:
        async for chunk in store.read(key):
            chunks.append(chunk)
    except KeyError:
        return None
    return b"".join(chunks)


async def check_stored(
    store: ObjectStore, data: bytes, key: str, anchors: list[x509.Certificate] | None
) -> TokenCheck:
    """What ``verify`` says of the token at ``key`` for ``data`` (what a chain head names)."""
    shown = store.full_key(key)
    try:
        token = await read_token(store, key)
        if token is None:
            return TokenCheck(TokenState.MISSING, shown)
        if anchors is None:
            return TokenCheck(TokenState.UNCHECKED, shown)
        stamp = verify_token(token, data, anchors)
    except TimestampInvalidError as exc:
        return TokenCheck(TokenState.INVALID, shown, reason=str(exc))
    return TokenCheck(TokenState.VALID, shown, stamp=stamp)
