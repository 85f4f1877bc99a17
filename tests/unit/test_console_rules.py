"""The console's pure rules: byte ranges, roles, accounts, sign-in limits, proxies, dates."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from multidict import CIMultiDict

from archiver.console.auth import (
    PROXY_ONLY,
    Account,
    AmbiguousIdentity,
    Role,
    TrustedProxy,
    check_password,
    hash_password,
    read_accounts,
)
from archiver.console.index import CallQuery
from archiver.console.media import parse_range
from archiver.console.throttle import USER_CAP, SignInThrottle
from archiver.console.words import call_time, local_time, translator
from archiver.errors import ConfigError


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=900-5000", (900, 999)),
        ("bytes=0-0", (0, 0)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole object
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=abc", None),
    ],
)
def test_ranges(header, expected):
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5-4", "bytes=-0", "bytes=99999999-"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(web.HTTPRequestRangeNotSatisfiable) as raised:
        parse_range(header, 1000)
    assert raised.value.headers["Content-Range"] == "bytes */1000"


def test_roles_are_ordered_and_parsed():
    assert Role.VIEWER < Role.LISTENER < Role.EXPORTER < Role.OFFICER
    assert Role.parse(" Officer ") is Role.OFFICER
    with pytest.raises(ValueError, match="one of viewer, listener, exporter, officer"):
        Role.parse("admin")


def test_accounts_file(tmp_path):
    path = tmp_path / "users"
    assert read_accounts(path) == {}
    hashed = hash_password("a long password")
    path.write_text(f"# comment\nana:listener:{hashed}\nproxy.user@x.vn:officer:{PROXY_ONLY}\n")
    accounts = read_accounts(path)
    assert accounts["ana"].role is Role.LISTENER
    assert check_password(accounts["ana"], "a long password")
    assert not check_password(accounts["ana"], "a long passworD")
    assert not check_password(accounts["proxy.user@x.vn"], PROXY_ONLY)
    assert not check_password(None, "a long password")
    for bad, problem in [
        ("ana:listener", "line 1: not name:role:hash"),
        ("ana:root:x", "line 1: unknown role"),
        ("../ana:viewer:x", "line 1: user name"),
    ]:
        path.write_text(bad + "\n")
        with pytest.raises(ConfigError, match=problem):
            read_accounts(path)
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")


def test_a_damaged_hash_is_a_wrong_password():
    assert not check_password(Account("ana", Role.VIEWER, "$argon2id$garbage"), "anything")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_guessing_pair_waits_longer_and_longer():
    clock = Clock()
    throttle = SignInThrottle(attempts=3, clock=clock)
    for _ in range(2):
        assert throttle.refused_for("10.0.0.1", "ana") == 0
        throttle.failed("10.0.0.1", "ana")
    assert throttle.refused_for("10.0.0.1", "ana") == 0  # still within the free tries
    throttle.failed("10.0.0.1", "ana")
    assert throttle.refused_for("10.0.0.1", "ANA") == 15.0
    assert throttle.refused_for("10.0.0.2", "ana") == 0  # another address is not refused
    clock.now += 10.0
    assert throttle.refused_for("10.0.0.1", "ana") == 5.0
    clock.now += 5.0
    throttle.failed("10.0.0.1", "ana")
    assert throttle.refused_for("10.0.0.1", "ana") == 30.0  # exponential
    clock.now += 30.0
    throttle.failed("10.0.0.1", "ana")
    assert throttle.refused_for("10.0.0.1", "ana") == 60.0


def test_the_real_user_is_slowed_never_locked_out():
    clock = Clock()
    throttle = SignInThrottle(attempts=5, clock=clock)
    for number in range(200):  # a guesser spread over 200 addresses, against one user
        throttle.failed(f"10.9.{number // 250}.{number % 250}", "ana")
    # From the real user's own address: not refused, only slowed, and by little.
    assert throttle.refused_for("192.0.2.7", "ana") == 0
    assert 0 < throttle.delay_for("ana") <= USER_CAP
    assert throttle.delay_for("bob") == 0
    throttle.succeeded("192.0.2.7", "ana")
    assert throttle.refused_for("192.0.2.7", "ana") == 0


def test_one_address_spraying_names_is_refused_others_are_not():
    clock = Clock()
    throttle = SignInThrottle(attempts=2, clock=clock)
    for name in ("bob", "cy", "dan", "eve", "fay", "gus", "hal", "ida"):
        throttle.failed("10.0.0.1", name)
    assert throttle.refused_for("10.0.0.1", "zoe") > 0  # 4 x attempts from one address
    assert throttle.refused_for("10.0.0.9", "zoe") == 0
    clock.now += 15 * 60 + 1  # the window passes: everything is forgotten
    assert throttle.refused_for("10.0.0.1", "zoe") == 0


def test_the_sign_in_throttle_remembers_a_bounded_number_of_names():
    throttle = SignInThrottle(attempts=5, max_keys=1000)
    for number in range(5000):  # a guesser asking about names that have never failed
        assert throttle.refused_for(f"10.1.{number // 250}.{number % 250}", f"user{number}") == 0
        assert throttle.delay_for(f"user{number}") == 0
    assert len(throttle) == 0  # asking remembers nothing
    for number in range(5000):  # and failing with endless distinct names and addresses
        throttle.failed(f"10.2.{number // 250}.{number % 250}", f"name{number}")
    assert len(throttle) == 1000
    for _ in range(6):
        throttle.failed("10.3.0.1", "ana")
    assert len(throttle) == 1000  # the least recently failed keys made room
    assert throttle.refused_for("10.3.0.1", "ana") > 0  # the newest failures are kept
    assert throttle.delay_for("ana") > 0


@pytest.mark.parametrize(
    ("remote", "value", "expected"),
    [
        ("10.1.2.3", "ana@corp.vn", "ana@corp.vn"),
        ("10.1.2.3", " ana ", "ana"),
        ("192.168.1.1", "ana", None),  # not a proxy address
        (None, "ana", None),
        ("not an ip", "ana", None),
        ("10.1.2.3", "", None),
        ("10.1.2.3", "ana:officer", None),  # not a user name
        ("10.1.2.3", "../../etc", None),
    ],
)
def test_trusted_proxy(remote, value, expected):
    proxy = TrustedProxy("X-Forwarded-User", ["10.0.0.0/8"])
    assert proxy.user(remote, CIMultiDict({"X-Forwarded-User": value})) == expected


def test_no_proxy_configured_trusts_no_header():
    one = CIMultiDict({"X-Forwarded-User": "a", "X-User": "a"})
    assert TrustedProxy(None, ["10.0.0.0/8"]).user("10.1.2.3", one) is None
    assert TrustedProxy("X-User", []).user("10.1.2.3", one) is None


def test_an_identity_header_sent_twice_is_refused_not_guessed():
    proxy = TrustedProxy("X-User", ["10.0.0.0/8"])
    twice = CIMultiDict([("X-User", "officer"), ("x-user", "viewer")])
    with pytest.raises(AmbiguousIdentity):
        proxy.user("10.1.2.3", twice)
    assert proxy.user("192.0.2.1", twice) is None  # not from the proxy: not read at all


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("10.1.2.3", ["192.0.2.7"], "192.0.2.7"),
        ("10.1.2.3", ["198.51.100.1, 192.0.2.7"], "192.0.2.7"),  # the hop the proxy added
        ("10.1.2.3", ["198.51.100.1", "192.0.2.7"], "192.0.2.7"),
        ("10.1.2.3", ["not-an-ip"], "10.1.2.3"),
        ("10.1.2.3", [], "10.1.2.3"),
        ("192.0.2.50", ["192.0.2.7"], "192.0.2.50"),  # a client's own header is not believed
    ],
)
def test_the_client_address_comes_from_the_proxy_only(remote, forwarded, expected):
    proxy = TrustedProxy("X-User", ["10.0.0.0/8"])
    headers = CIMultiDict([("X-Forwarded-For", value) for value in forwarded])
    assert proxy.client_address(remote, headers) == expected


def test_dates_in_the_calls_zone_and_the_consoles():
    assert call_time("2021-02-17T08:05:00+07:00") == "2021-02-17 08:05:00 +07:00"
    assert call_time("2021-02-17T01:05:00+00:00") == "2021-02-17 01:05:00 +00:00"
    assert call_time("garbage") == "garbage"
    assert call_time(None) == ""
    hcm = ZoneInfo("Asia/Ho_Chi_Minh")
    assert local_time("2021-02-17T01:05:00Z", hcm) == "2021-02-17 08:05:00 +07:00"


def test_words_fall_back_to_english_then_the_key():
    assert translator("vi")("search") == "Tìm kiếm"
    assert translator("en")("search") == "Search"
    assert translator("vi")("no-such-word") == "no-such-word"


def test_a_phone_or_agent_search_walks_the_terms_index():
    source, where, params, order = CallQuery(phone="+84 90 123 4567", direction="inbound").plan()
    assert source.startswith("terms t")
    assert params[:2] == ["p", "0901234567"]
    assert "inbound" in params
    assert order.startswith("t.started DESC")
    source, _, params, _ = CallQuery(agent=" Nguyễn Văn A ").plan()
    assert params[:2] == ["a", "nguyễn văn a"]
    since = datetime(2021, 2, 17, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    source, where, params, order = CallQuery(since=since).plan()
    assert source == "calls c"
    assert params == [int(since.timestamp())]
