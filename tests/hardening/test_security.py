"""Security, each rule with its test.

- The recording-host guard: private, loopback, link-local and cloud-metadata
  addresses in every spelling, names resolving to them (some of many answers
  included), and redirects to any of these, are refused without a connection.
  (tests/integration/test_transfer.py has the first cases; these extend them.)
- Hostile ids make safe keys on S3 too, not only on a local directory.
- Secrets and URL signatures never reach the output, the errors or the storage.
- TLS verification is on by default, for the storage and the recordings alike.

No test here ever sends a packet beyond loopback: literal addresses are refused
before any request, names are resolved by a fake resolver, and the test
connector itself refuses (and fails the test) any non-loopback connection.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from archiver.models import CallRecord, Provider
from archiver.pipeline.hosts import GuardedResolver, HostPolicy, HostRefusedError
from archiver.pipeline.transfer import TransferConfig, Transferrer, Verdict
from archiver.settings import Settings, StorageSettings
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.simulator.audio import RecordingBytes
from archiver.storage import open_store
from archiver.storage.base import ObjectStore
from tests.support.cli import cli_env, run_cli, s3_storage_env
from tests.support.faultproxy import FaultProxy
from tests.support.seaweed import MakeBucket, S3Settings, SeaweedServer, admin_client
from tests.support.web import serve

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
WAV = RecordingBytes(3, 1, "wav", 30_000, "security").read()
API = "https://pbx.example.vn"  # the API's own host: trusted, never contacted here

# -- the host guard, on the URL (pure: nothing is contacted) --------------------------------

REFUSED_URLS = [
    "http://10.0.0.5/rec.wav",
    "http://172.16.0.1/rec.wav",
    "http://192.168.1.10/rec.wav",
    "http://100.64.0.1/rec.wav",  # carrier-grade NAT
    "http://127.0.0.1/rec.wav",
    "http://127.255.255.254/rec.wav",
    "http://0.0.0.0/rec.wav",
    "http://169.254.169.254/latest/meta-data/",  # AWS, GCP, Azure, OpenStack metadata
    "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud metadata
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS metadata over IPv6
    "http://[::1]/rec.wav",
    "http://[::]/rec.wav",
    "http://[::ffff:127.0.0.1]/rec.wav",  # IPv4-mapped
    "http://[::ffff:a9fe:a9fe]/latest/",  # 169.254.169.254, mapped, in hex
    "http://[fe80::1%25eth0]/rec.wav",  # link-local with a zone
    "http://[fc00::1]/rec.wav",
    "http://224.0.0.1/rec.wav",
    "http://255.255.255.255/rec.wav",
    "http://user:password@10.0.0.1/rec.wav",
    "http://10.0.0.1:8080/rec.wav",
    "ftp://rec.example.vn/a.wav",
    "file:///etc/passwd",
    "gopher://rec.example.vn/",
    "data:audio/wav;base64,UklGRg==",
    "//rec.example.vn/a.wav",
    "http:///a.wav",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_special_addresses_and_schemes_are_refused_before_any_request(url: str) -> None:
    from archiver.pipeline.hosts import HostNotAllowedError

    with pytest.raises(HostNotAllowedError):
        HostPolicy([], API).check_url(url)


@pytest.mark.parametrize(
    "url",
    ["https://rec.example.vn/a.wav", "http://93.184.216.34/a.wav", f"{API}/recordings/a.wav"],
)
def test_public_hosts_and_the_api_host_pass_the_url_check(url: str) -> None:
    HostPolicy([], API).check_url(url)


# -- names: resolved, then checked (the OS resolver parses numeric forms itself) ----------

NUMERIC_NAMES = [
    "2130706433",  # 127.0.0.1 in decimal
    "0177.0.0.1",  # octal
    "0x7f000001",  # hex
    "127.1",  # short form
    "2852039166",  # 169.254.169.254 in decimal
    "0xa9.0xfe.0xa9.0xfe",
    "0251.0376.0251.0376",
    "localhost",
    "LOCALHOST",
]


@pytest.mark.parametrize("name", NUMERIC_NAMES)
async def test_numeric_and_local_names_are_refused_when_resolved(name: str) -> None:
    resolver = GuardedResolver(HostPolicy([], API))
    try:
        with pytest.raises(HostRefusedError, match="resolves to a private or special address"):
            await resolver.resolve(name, 80)
    finally:
        await resolver.close()


class FakeDNS(AbstractResolver):
    """Answers from a table, the way a hostile or poisoned DNS would."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=6 if ":" in address else 2,
                proto=0,
                flags=0,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


EVIL_DNS = {
    "metadata.evil.test": ["169.254.169.254"],
    "intranet.evil.test": ["10.1.2.3"],
    "rebind.evil.test": ["93.184.216.34", "10.0.0.1"],  # one public answer, one private
    "v6.evil.test": ["fd12:3456::1"],
    "mapped.evil.test": ["::ffff:192.168.0.1"],
    "nat.evil.test": ["100.64.12.34"],
    "public.example.vn": ["93.184.216.34"],
}


@pytest.mark.parametrize("name", sorted(set(EVIL_DNS) - {"public.example.vn"}))
async def test_names_resolving_to_special_addresses_are_refused(name: str) -> None:
    resolver = GuardedResolver(HostPolicy([], API), FakeDNS(EVIL_DNS))
    with pytest.raises(HostRefusedError, match=name):
        await resolver.resolve(name, 80)


async def test_a_listed_host_may_resolve_anywhere_and_public_names_pass() -> None:
    policy = HostPolicy([".evil.test"], API)  # the operator vouches for these
    resolver = GuardedResolver(policy, FakeDNS(EVIL_DNS))
    assert [r["host"] for r in await resolver.resolve("intranet.evil.test", 80)] == ["10.1.2.3"]
    unlisted = GuardedResolver(HostPolicy([], API), FakeDNS(EVIL_DNS))
    assert [r["host"] for r in await unlisted.resolve("public.example.vn", 80)] == ["93.184.216.34"]


# -- end to end through the transfer, with a connector that refuses to leave loopback ----


class LoopbackOnly(aiohttp.TCPConnector):
    """The test's safety net: any connection beyond loopback fails the test instead."""

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Any] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces)
        for r in results:
            if not ipaddress.ip_address(r["host"].split("%")[0]).is_loopback:
                pytest.fail(f"the guard let a connection to {r['host']} ({host}) through")
        return results


async def wav_handler(_: web.Request) -> web.Response:
    return web.Response(body=WAV, content_type="audio/wav")


@asynccontextmanager
async def transferrer(
    store: ObjectStore, api: str, dns: dict[str, Sequence[str]], hosts: Sequence[str] = ()
) -> AsyncIterator[Transferrer]:
    policy = HostPolicy(hosts, api)
    connector = LoopbackOnly(resolver=GuardedResolver(policy, FakeDNS(dns)))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Transferrer(
            session, store, policy, TransferConfig(StorageSettings(part_size=5 << 20), tz=HCM)
        )


def call(url: str, sip: str = "call-1") -> CallRecord:
    return CallRecord(
        provider=Provider.CDR_V2,
        cdr_id="cdr-1",
        sip_call_id=sip,
        started_at=datetime(2021, 2, 17, 10, 0, tzinfo=HCM),
        recording_url=url,
    )


async def test_a_name_resolving_to_loopback_is_refused_at_connect_unless_listed(
    tmp_path: Path,
) -> None:
    async with serve({"/rec.wav": wav_handler}, host="127.0.0.2") as served:
        target, hits = served.url, served.hits
        port = target.rsplit(":", 1)[1]
        dns = {"recordings.evil.test": ["127.0.0.2"]}
        url = f"http://recordings.evil.test:{port}/rec.wav"
        async with open_store(StorageSettings(url=str(tmp_path / "a"))) as store:
            async with transferrer(store, API, dns) as t:
                refused = await t.transfer(call(url))
            assert refused.verdict is Verdict.FAILED
            assert "resolves to a private or special address" in refused.reason
            assert hits == []
            async with transferrer(store, API, dns, hosts=["recordings.evil.test"]) as t:
                allowed = await t.transfer(call(url))
    assert allowed.verdict is Verdict.ARCHIVED, allowed.reason
    assert hits == ["/rec.wav"]


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.1/rec.wav",
        "http://[::ffff:127.0.0.2]:{port}/rec.wav",
        "http://2130706433:{port}/rec.wav",
        "http://metadata.evil.test/latest/",
        "http://sneaky.evil.test:{port}/rec.wav",
        "file:///etc/passwd",
        "ftp://10.0.0.1/rec.wav",
    ],
)
async def test_redirects_to_special_places_are_refused(tmp_path: Path, location: str) -> None:
    async with serve({"/rec.wav": wav_handler}, host="127.0.0.2") as served:
        target, hits = served.url, served.hits
        port = target.rsplit(":", 1)[1]

        async def redirect(_: web.Request) -> web.Response:
            raise web.HTTPFound(location.format(port=port))

        # The API host (trusted) hands out a link that redirects somewhere special.
        async with serve({"/r": redirect}) as api_server:
            api, api_hits = api_server.url, api_server.hits
            dns = {"metadata.evil.test": ["169.254.169.254"], "sneaky.evil.test": ["127.0.0.2"]}
            async with (
                open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
                transferrer(store, api, dns) as t,
            ):
                result = await t.transfer(call(f"{api}/r"))
    # Refused by the guard (FAILED), or by aiohttp itself for a URL it cannot take.
    assert result.verdict in (Verdict.FAILED, Verdict.RETRY), result
    assert result.verdict is Verdict.FAILED or "InvalidUrl" in result.reason, result
    assert api_hits == ["/r"]
    assert hits == []
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("*.wav"))


async def test_too_many_redirects_fail_without_looping(tmp_path: Path) -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/r{int(request.path[2:] or 0) + 1}")

    routes = {f"/r{i}" if i else "/r": loop for i in range(20)}
    async with serve(routes) as served:
        api, hits = served.url, served.hits
        async with (
            open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
            transferrer(store, api, {}) as t,
        ):
            result = await t.transfer(call(f"{api}/r"))
    assert result.verdict is Verdict.FAILED
    assert "redirects" in result.reason
    assert len(hits) <= 6


# -- hostile ids make safe keys on S3 too -----------------------------------------------------

HOSTILE_IDS = [
    "../../../../etc/passwd",
    "..",
    "/abs/olute",
    "a\x00b",
    "..\\..\\windows\\system32",
    "%2e%2e%2f%2e%2e%2fescape",
    "Nguyễn Văn A",
    "\u202ewav.exe",  # right-to-left override
    "ｆｕｌｌｗｉｄｔｈ",
    "a" * 10_000,
    "manifests/../_archiver/x",
    "?x=1#frag",
    " ",
    "\ud800lone",
]


async def test_hostile_ids_make_safe_keys_in_an_s3_bucket(
    make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    bucket = await make_bucket()
    async with serve({"/rec.wav": wav_handler}) as served:
        api = served.url
        async with open_store(s3_settings(bucket)) as store, transferrer(store, api, {}) as t:
            results = [await t.transfer(call(f"{api}/rec.wav", sip)) for sip in HOSTILE_IDS]
    assert [r.verdict for r in results] == [Verdict.ARCHIVED] * len(HOSTILE_IDS), results
    async with admin_client(seaweed) as client:
        listing = await client.list_objects_v2(Bucket=bucket)
    keys = [item["Key"] for item in listing.get("Contents", [])]
    assert len(keys) == len(set(keys)) == len(HOSTILE_IDS), "two hostile ids share a key"
    for key in keys:
        folder, _, name = key.rpartition("/")
        assert folder == "prefix/recordings/2021/02/17", key
        assert name.isascii()
        assert len(name) <= 132
        assert not name.startswith(".")
        assert "\\" not in name
        assert "%" not in name


# -- secrets and signatures never leave the process ------------------------------------------


@pytest.mark.slow
async def test_token_and_url_signatures_appear_nowhere(
    tmp_path: Path, make_bucket: MakeBucket, s3_settings: S3Settings, seaweed: SeaweedServer
) -> None:
    token = "tok-7Hq2-SECRET-d41d8cd98f00b204"  # noqa: S105 - the secret under test
    sim = Simulator(
        SimConfig(
            seed=12,
            calls=20,
            max_size=60_000,
            token=token,
            # Expiring links, failures and late recordings: every logging path is taken.
            faults=Faults(
                signed_ttl=0.0,
                # A delay of a second before answering: a signed link asked for then
                # has expired on arrival, so the refresh path is taken.
                slow=0.5,
                slow_seconds=1.05,
                rec_5xx=0.2,
                rec_html=0.1,
                rec_truncated=0.1,
                api_5xx=0.1,
                api_429=0.1,
                retry_after=0,
            ),
        )
    )
    minted: set[str] = set()
    sign = sim.sign

    def recording_sign(filename: str, expires: int) -> str:
        signature = sign(filename, expires)
        minted.add(signature)
        return signature

    sim.sign = recording_sign  # type: ignore[method-assign]
    bucket = await make_bucket()
    storage = s3_settings(bucket)
    async with sim.serve() as base:
        env = cli_env(
            {
                "ARCHIVER_SOURCE__KIND": "cdr_v2",
                "ARCHIVER_SOURCE__BASE_URL": base,
                "ARCHIVER_SOURCE__TOKEN": token,
                "ARCHIVER_SOURCE__RATE_LIMIT": "0",
                "ARCHIVER_SOURCE__MAX_BACKOFF": "0.05",
                "ARCHIVER_SOURCE__PAGE_SIZE": "10",
                "ARCHIVER_CONCURRENCY": "8",
                "ARCHIVER_STATE__URL": str(tmp_path / "state.sqlite3"),
                "ARCHIVER_RETRY__INITIAL": "0.05",
                "ARCHIVER_RETRY__MAXIMUM": "0.2",
                "ARCHIVER_RETRY__MAX_ATTEMPTS": "3",  # some fail for good: their reasons print
                "ARCHIVER_MANIFEST_INTERVAL": "0.2",
                **s3_storage_env(storage, seaweed),
            }
        )
        since, until = "2021-02-17 08:00", "2021-02-17 14:00"
        runs = []
        runs.append(
            await run_cli(
                "backfill", "-v", "--since", since, "--until", until, env=env, cwd=tmp_path
            )
        )
        runs.append(await run_cli("status", env=env, cwd=tmp_path))
        bad = dict(env, ARCHIVER_SOURCE__TOKEN=token + "-wrong")
        runs.append(await run_cli("check", env=bad, cwd=tmp_path))
    signed = [c for c in sim.calls if c.has_recording and c.url_kind == "signed"]
    assert signed, "the seed gives no signed URL: pick another"
    assert minted
    assert sim.stats["signed_rejected"] > 0, (
        "no signed link expired: the refresh path was not taken"
    )
    output = "".join(r.out + r.err for r in runs)
    stored = b""
    async with admin_client(seaweed) as client:
        listing = await client.list_objects_v2(Bucket=bucket)
        for item in listing.get("Contents", []):
            if not item["Key"].startswith("prefix/recordings/"):
                body = await (await client.get_object(Bucket=bucket, Key=item["Key"]))[
                    "Body"
                ].read()
                stored += body
    text = output + stored.decode("utf-8", "replace")
    assert stored, "no manifest was written"
    for secret in (token, seaweed.secret_key, *minted):
        assert secret not in text, f"a secret leaked: {secret[:12]}..."
    assert "expires=" not in stored.decode()
    assert "/signed/" not in stored.decode()


# -- TLS: verification on by default ----------------------------------------------------------


def test_tls_verification_is_on_by_default_and_off_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert StorageSettings().verify_tls is True
    for name in list(os.environ):
        if name.startswith("ARCHIVER_"):
            monkeypatch.delenv(name)
    assert Settings().storage.verify_tls is True
    monkeypatch.setenv("ARCHIVER_STORAGE__VERIFY_TLS", "false")
    assert Settings().storage.verify_tls is False


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 that no trust store knows, and a server context for it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(  # noqa: S603 - fixed arguments
        [  # noqa: S607
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


async def test_recordings_over_tls_with_an_unknown_certificate_are_not_archived(
    tmp_path: Path, self_signed: tuple[Path, ssl.SSLContext]
) -> None:
    _, context = self_signed
    async with serve({"/rec.wav": wav_handler}, ssl_context=context) as served:
        api, hits = served.url, served.hits
        async with (
            open_store(StorageSettings(url=str(tmp_path / "a"))) as store,
            transferrer(store, api, {}) as t,
        ):
            result = await t.transfer(call(f"{api}/rec.wav"))
    assert result.verdict is not Verdict.ARCHIVED
    assert "Certificate" in result.reason, result.reason
    assert hits == []
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("*.wav"))


async def test_storage_behind_an_unknown_certificate_is_refused_unless_trusted(
    tmp_path: Path,
    make_bucket: MakeBucket,
    s3_settings: S3Settings,
    seaweed: SeaweedServer,
    self_signed: tuple[Path, ssl.SSLContext],
) -> None:
    """``archiver check`` against S3 behind a self-signed certificate: refused in one line,
    with no request getting through; accepted once AWS_CA_BUNDLE trusts the certificate
    (the standard way for a private CA), or with the explicit insecure switch."""
    cert, context = self_signed
    bucket = await make_bucket()
    sim = Simulator(SimConfig(seed=1, calls=1))
    proxy = FaultProxy(seaweed.endpoint_url, ssl_context=context)
    async with proxy.serve() as endpoint, sim.serve() as base:
        assert endpoint.startswith("https://")
        env = cli_env(
            {
                "ARCHIVER_SOURCE__KIND": "cdr_v2",
                "ARCHIVER_SOURCE__BASE_URL": base,
                "ARCHIVER_SOURCE__TOKEN": sim.config.token,
                **s3_storage_env(s3_settings(bucket), seaweed, endpoint),
            }
        )
        refused = await run_cli("check", env=env, cwd=tmp_path, timeout=120)
        through_unverified = proxy.stats["requests"]
        trusted = await run_cli("check", env=dict(env, AWS_CA_BUNDLE=str(cert)), cwd=tmp_path)
        insecure = await run_cli(
            "check", env=dict(env, ARCHIVER_STORAGE__VERIFY_TLS="false"), cwd=tmp_path
        )
    assert refused.code == 1, refused.err
    assert "Traceback" not in refused.err
    [line] = [x for x in refused.err.splitlines() if x.startswith("archiver: storage: ")]
    assert line.startswith(f"archiver: storage: s3://{bucket}/prefix: cannot ")
    assert "certificate verify failed" in line.lower()
    assert through_unverified == 0, "a request got through an unverified connection"
    assert trusted.code == 0, trusted.err
    assert insecure.code == 0, insecure.err
    assert proxy.stats["requests"] > 0
