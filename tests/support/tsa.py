"""A local RFC 3161 time-stamping authority for the tests: OpenSSL's ``ts -reply``
behind a small aiohttp server on 127.0.0.1.

``make_pki`` writes, into a directory, a CA and a TSA certificate it signs
(extendedKeyUsage = critical, timeStamping) and the ``openssl ts`` configuration.
``LocalTsa`` serves ``POST /`` (application/timestamp-query) by running
``openssl ts -reply`` on each query; its ``mode`` turns it into a faulty or
hostile TSA (a replayed answer, an error status, an oversized or slow body).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.web import serve

OPENSSL = shutil.which("openssl") or "openssl"
# Fixed validity: the certificates are valid from a day ago to a year on, so a
# token's genTime (now) always falls inside.
_VALID_BEFORE = timedelta(days=1)
_VALID_AFTER = timedelta(days=365)


@dataclass(frozen=True)
class Pki:
    """The files of one test PKI: a CA, a TSA signed by it, the ``ts`` config."""

    directory: Path
    ca_cert: Path
    tsa_cert: Path
    tsa_key: Path
    config: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _VALID_BEFORE)
        .not_valid_after(now + _VALID_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        # RFC 3161 2.3: the TSA's certificate has the sole, critical, timeStamping purpose.
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _write_pem(path: Path, obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            obj.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


_CONFIG = """\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def make_pki(directory: Path, name: str = "Test", *, send_chain: bool = False) -> Pki:
    """A CA and a TSA certificate it signs, and the ``openssl ts`` config, in ``directory``.

    ``send_chain``: tokens embed the CA certificate too, after the TSA's (chain
    order, not the DER order of a SET OF), as OpenSSL-based TSAs configured
    with ``certs`` do.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    ca_name, tsa_name = f"{name} Root CA", f"{name} TSA"
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    tsa = _cert(tsa_name, tsa_key, ca_name, ca_key, ca=False)
    # Serials and signatures are random, so the DER order of the two certificates
    # is too: a sent chain is made out of DER order every time, as the test needs.
    for _ in range(100):
        if not send_chain or _der(tsa) > _der(ca):
            break
        tsa = _cert(tsa_name, tsa_key, ca_name, ca_key, ca=False)
    else:
        raise AssertionError("no TSA certificate sorting after its CA's")
    (directory / "serial").write_text("01\n")
    config = directory / "tsa.cnf"
    config.write_text(
        _CONFIG.format(dir=directory) + ("certs = $dir/ca.pem\n" if send_chain else "")
    )
    return Pki(
        directory=directory,
        ca_cert=_write_pem(directory / "ca.pem", ca),
        tsa_cert=_write_pem(directory / "tsa.pem", tsa),
        tsa_key=_write_pem(directory / "tsa.key", tsa_key),
        config=config,
    )


class Mode(enum.Enum):
    """How the local TSA answers."""

    OK = "ok"
    # Answers every query with the first token it ever issued (a replay).
    REPLAY = "replay"
    ERROR_500 = "error-500"
    # A body larger than any real token, of the right content type.
    HUGE = "huge"
    # Waits before answering (longer than the client's deadline in the tests).
    SLOW = "slow"
    # A 200 with bytes that are not a TimeStampResp.
    GARBAGE = "garbage"


REPLY = "application/timestamp-reply"
HUGE_BODY_BYTES = 4 * 1024 * 1024
SLOW_SECONDS = 30.0


async def _openssl_reply(pki: Pki, query: bytes, nth: int) -> bytes:
    query_file = pki.directory / f"query-{nth}.tsq"
    reply_file = pki.directory / f"reply-{nth}.tsr"
    query_file.write_bytes(query)
    proc = await asyncio.create_subprocess_exec(
        OPENSSL,
        "ts",
        "-reply",
        "-config",
        str(pki.config),
        "-section",
        "tsa_config",
        "-queryfile",
        str(query_file),
        "-out",
        str(reply_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"openssl ts -reply failed: {err.decode(errors='replace')}")
    return reply_file.read_bytes()


class LocalTsa:
    """The TSA server's state: its PKI, its mode and what it has answered."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.mode = Mode.OK
        self.queries = 0
        self._first: bytes | None = None
        # openssl ts keeps its serial number in a file: one reply at a time.
        self._lock = asyncio.Lock()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one time-stamp query as the current mode says."""
        self.queries += 1
        query = await request.read()
        if self.mode is Mode.ERROR_500:
            return web.Response(status=500, text="TSA out of order")
        if self.mode is Mode.GARBAGE:
            return web.Response(body=b"\x30\x03\x02\x01", content_type=REPLY)
        if self.mode is Mode.SLOW:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), SLOW_SECONDS)
        if self.mode is Mode.HUGE:
            return web.Response(body=b"\x00" * HUGE_BODY_BYTES, content_type=REPLY)
        if request.content_type != "application/timestamp-query":
            return web.Response(status=415, text="want application/timestamp-query")
        async with self._lock:
            reply = await _openssl_reply(self.pki, query, self.queries)
        if self._first is None:
            self._first = reply
        if self.mode is Mode.REPLAY:
            reply = self._first
        return web.Response(body=reply, content_type=REPLY)


@asynccontextmanager
async def serve_tsa(pki: Pki) -> AsyncIterator[tuple[LocalTsa, str]]:
    """Run a local TSA on 127.0.0.1 (a free port); yield it and its URL."""
    tsa = LocalTsa(pki)
    async with serve({"/": tsa.handle}) as served:
        try:
            yield tsa, served.url + "/"
        finally:
            # A SLOW answer still waiting ends now, so the server stops at once.
            tsa.release.set()
