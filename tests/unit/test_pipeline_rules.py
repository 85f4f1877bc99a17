import json
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from archiver.manifest.entry import ManifestEntry
from archiver.models import CallRecord, Direction, Provider
from archiver.pipeline.hosts import HostNotAllowedError, HostPolicy, is_special_address
from archiver.pipeline.policy import RetryPolicy, claimable
from archiver.pipeline.transfer import Verdict, _status_verdict
from archiver.settings import RetrySettings
from archiver.storage.base import ObjectProof
from archiver.storage.layout import manifest_date

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "224.0.0.1",
    ],
)
def test_special_addresses(address):
    assert is_special_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "203.113.131.1", "2001:4860:4860::8888"])
def test_public_addresses(address):
    assert not is_special_address(address)


def test_the_api_host_and_listed_hosts_are_trusted():
    policy = HostPolicy(["rec.internal", ".cdn.internal"], "http://10.0.0.5:8080")
    for url in (
        "http://10.0.0.5:8080/a.wav",
        "http://rec.internal/a.wav",
        "https://x.cdn.internal/a.wav",
    ):
        policy.check_url(url)
    policy.check_resolved("rec.internal", ["10.9.9.9"])


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.6/a.wav",
        "http://[::1]/a.wav",
        "http://169.254.169.254/latest/meta-data",
        "ftp://example.com/a.wav",
        "file:///etc/passwd",
        "http:///nohost",
    ],
)
def test_refused_urls(url):
    with pytest.raises(HostNotAllowedError):
        HostPolicy([], "http://10.0.0.5:8080").check_url(url)


def test_untrusted_name_resolving_to_private_is_refused():
    policy = HostPolicy([], "https://api.example.vn")
    policy.check_resolved("rec.example.vn", ["203.113.131.1"])
    with pytest.raises(HostNotAllowedError, match="resolves to a private"):
        policy.check_resolved("evil.example.com", ["203.113.131.1", "10.0.0.1"])


def test_transient_backoff_grows_and_gives_up():
    policy = RetryPolicy(RetrySettings(initial=2, maximum=60, max_attempts=4), jitter=0)
    now = datetime(2021, 1, 1, tzinfo=UTC)
    delays = [(policy.after_transient(n, now) - now).total_seconds() for n in (1, 2, 3)]
    assert delays == [2, 4, 8]
    assert policy.after_transient(4, now) is None


def test_jitter_stays_within_bounds():
    policy = RetryPolicy(RetrySettings(initial=10, maximum=100), jitter=0.2)
    now = datetime(2021, 1, 1, tzinfo=UTC)
    rng = random.Random(1)
    for _ in range(100):
        delay = (policy.after_transient(1, now, rng) - now).total_seconds()
        assert 8 <= delay <= 12


def test_not_ready_until_the_deadline_then_never():
    policy = RetryPolicy(
        RetrySettings(not_ready_initial=30, not_ready_maximum=600, ready_deadline=3600), jitter=0
    )
    ended = datetime(2021, 1, 1, tzinfo=UTC)
    assert policy.after_not_ready(1, ended, ended + timedelta(seconds=5)) == ended + timedelta(
        seconds=35
    )
    late = ended + timedelta(seconds=3590)
    assert policy.after_not_ready(9, ended, late) == ended + timedelta(seconds=3600)
    assert policy.after_not_ready(10, ended, ended + timedelta(seconds=3600)) is None


def test_an_old_call_gets_its_minimum_attempts_before_never():
    # A call ended a year ago: its first 404 is not the end (a replica lagging,
    # a CDN, a moved file); the attempts back off like transient ones.
    policy = RetryPolicy(
        RetrySettings(initial=2, maximum=300, ready_deadline=3600, not_ready_min_attempts=4),
        jitter=0,
    )
    ended = datetime(2021, 1, 1, tzinfo=UTC)
    now = ended + timedelta(days=365)
    dues = [policy.after_not_ready(n, ended, now) for n in (1, 2, 3)]
    assert [(d - now).total_seconds() for d in dues if d is not None] == [2, 4, 8]
    assert policy.after_not_ready(4, ended, now) is None
    # The next try after the third is the last: the moment for a fresh URL by id.
    assert [policy.last_not_ready_attempt_next(n, ended, now) for n in (1, 2, 3)] == [
        False,
        False,
        True,
    ]
    # Within the deadline nothing changes: not ready yet is not "the last try".
    assert not policy.last_not_ready_attempt_next(3, ended, ended + timedelta(seconds=5))


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, None),
        (206, None),
        (404, Verdict.NOT_READY),
        (403, Verdict.EXPIRED),
        (401, Verdict.EXPIRED),
        (410, Verdict.EXPIRED),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (400, Verdict.FAILED),
        (405, Verdict.FAILED),
    ],
)
def test_recording_status_verdicts(status, verdict):
    assert _status_verdict(status) == verdict


def test_manifest_line_has_the_contract_fields_and_no_url():
    call = CallRecord(
        provider=Provider.CDR_V2,
        cdr_id="c1",
        sip_call_id="s1",
        started_at=datetime(2021, 2, 17, 23, 30, tzinfo=HCM),
        direction=Direction.INBOUND,
        recording_url="http://h/signed/x.wav?signature=SECRET",
    )
    entry = ManifestEntry.build(
        call,
        proof=ObjectProof(),
        object_key="p/recordings/x.wav",
        sha256="ab" * 32,
        size=10,
        content_type="audio/wav",
        archived_at=datetime(2021, 2, 17, 17, 0, tzinfo=UTC),
    )
    line = entry.to_line()
    parsed = json.loads(line)
    for name in (
        "sip_call_id",
        "cdr_id",
        "provider",
        "object_key",
        "sha256",
        "size",
        "content_type",
        "call_started_at",
        "archived_at",
    ):
        assert name in parsed
    assert parsed["call_started_at"] == "2021-02-17T23:30:00+07:00"
    assert parsed["archived_at"] == "2021-02-17T17:00:00Z"
    assert "SECRET" not in line
    assert "\n" not in line
    # The partition is the call's local date, not UTC's.
    assert manifest_date(call, HCM) == "2021-02-17"
    assert manifest_date(call, ZoneInfo("UTC")) == "2021-02-17"
    late = CallRecord(Provider.CDR_V2, "c2", "s2", datetime(2021, 2, 18, 6, 30, tzinfo=HCM))
    assert manifest_date(late, HCM) == "2021-02-18"
    assert manifest_date(late, ZoneInfo("UTC")) == "2021-02-17"


@pytest.mark.parametrize(
    ("queued", "room", "claimed"),
    [
        (0, 16, 16),  # a dry queue is filled whole
        (15, 16, 0),  # one free place while 15 wait: no claim transaction yet
        (13, 16, 0),
        (12, 16, 4),  # a quarter free: claimed together
        (3, 16, 13),
        (16, 16, 0),  # full
        (0, 1, 1),  # concurrency 1: every free place
        (1, 1, 0),
        (2, 3, 1),  # under 4 places: any free place
    ],
)
def test_the_dispatcher_claims_in_groups_but_never_lets_the_queue_run_dry(
    queued: int, room: int, claimed: int
) -> None:
    assert claimable(queued, room) == claimed
