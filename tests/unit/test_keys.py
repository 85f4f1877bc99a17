"""Object-key layout: sanitizing hostile values, rendering and validating templates."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.errors import BadRecordError
from archiver.models import CallRecord, Direction, Provider
from archiver.settings import DEFAULT_KEY_TEMPLATE
from archiver.storage.keys import (
    names_cdr,
    render_key,
    sanitize,
    sibling_key,
    validate_key,
    validate_template,
)

SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_@+=-][A-Za-z0-9._@+=-]*")
HASHED = re.compile(r".*-[0-9a-f]{12}")
HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def call(**changes: object) -> CallRecord:
    fields: dict[str, object] = {
        "provider": Provider.CDR_V2,
        "cdr_id": "cdr-1",
        "sip_call_id": "a84b4c76e66710@pc33.example.com",
        # 17:30 UTC is 00:30 the next day in Ho Chi Minh City (UTC+7).
        "started_at": datetime(2021, 2, 17, 17, 30, tzinfo=UTC),
        "direction": Direction.INBOUND,
        "extension": "101",
    }
    fields.update(changes)
    return CallRecord(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    ["abc", "a84b4c76e66710@pc33.example.com", "call-1_2.x", "a+b=c", "A..b", "9" * 128],
)
def test_safe_values_are_kept(value: str) -> None:
    assert sanitize(value) == value


@pytest.mark.parametrize(
    ("value", "readable"),
    [
        ("../x", "__x"),
        ("../../etc/passwd", "__.._etc_passwd"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("a\x00b", "a_b"),
        ("a\r\nb", "a_b"),
        ("..", "_"),
        (".hidden", "_hidden"),
        ("sip:1001@10.0.0.1:5060", "sip_1001@10.0.0.1_5060"),
        ("Nguyễn Văn A", "Nguy_n_V_n_A"),
        ("a b", "a_b"),
    ],
)
def test_unsafe_values_become_readable_and_hashed(value: str, readable: str) -> None:
    out = sanitize(value)
    assert SAFE_SEGMENT.fullmatch(out)
    assert out.rsplit("-", 1)[0] == readable
    assert HASHED.fullmatch(out)


def test_distinct_ids_stay_distinct() -> None:
    assert sanitize("a/b") != sanitize("a:b") != sanitize("a_b")
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    assert sanitize(long_a) != sanitize(long_b)
    assert len(sanitize(long_a)) == 128
    assert len(sanitize("y" * 129)) == 128
    assert sanitize(long_a, max_len=40).startswith("x" * 27 + "-")


@pytest.mark.parametrize(("value", "expected"), [("abc ", "abc"), ("\tabc\n", "abc"), ("", "_")])
def test_whitespace_is_stripped_and_empty_is_underscore(value: str, expected: str) -> None:
    assert sanitize(value) == expected
    assert sanitize("   ").startswith("_")


def test_unicode_is_normalized_first() -> None:
    composed = unicodedata.normalize("NFC", "Trần")
    decomposed = unicodedata.normalize("NFD", "Trần")
    assert composed != decomposed
    assert sanitize(composed) == sanitize(decomposed)


@given(st.text(max_size=400))
def test_any_text_gives_one_safe_segment(value: str) -> None:
    out = sanitize(value)
    assert SAFE_SEGMENT.fullmatch(out)
    assert len(out) <= 128
    assert sanitize(out) == out


def test_render_default_template_in_call_local_date() -> None:
    key = render_key(DEFAULT_KEY_TEMPLATE, call(), "wav", HCM)
    assert key == "recordings/2021/02/18/a84b4c76e66710@pc33.example.com.wav"
    assert render_key(DEFAULT_KEY_TEMPLATE, call(), "wav", ZoneInfo("UTC")).startswith(
        "recordings/2021/02/17/"
    )


def test_render_every_placeholder() -> None:
    template = (
        "{provider}/{yyyy}-{mm}-{dd}T{hh}/{direction}/{extension}/{cdr_id}_{sip_call_id}.{ext}"
    )
    key = render_key(template, call(), "mp3", HCM)
    assert key == "cdr_v2/2021-02-18T00/inbound/101/cdr-1_a84b4c76e66710@pc33.example.com.mp3"
    unknown = render_key(template, call(direction=None, extension=None), "mp3", HCM)
    assert unknown.startswith("cdr_v2/2021-02-18T00/unknown/unknown/")


@pytest.mark.parametrize(
    "sip_call_id", ["../../../etc/passwd", "/abs", "a/../../b", "..", "x\x00/y", "manifests/z"]
)
def test_hostile_ids_stay_in_their_folder(sip_call_id: str) -> None:
    key = render_key(DEFAULT_KEY_TEMPLATE, call(sip_call_id=sip_call_id), "wav", HCM)
    folder, _, name = key.rpartition("/")
    assert folder == "recordings/2021/02/18"
    assert SAFE_SEGMENT.fullmatch(name)
    validate_key(key)


@pytest.mark.parametrize("value", ["manifests", "_archiver"])
def test_values_cannot_reach_reserved_areas(value: str) -> None:
    with pytest.raises(BadRecordError, match="reserves"):
        render_key("{extension}/{sip_call_id}.{ext}", call(extension=value), "wav", HCM)


def test_naive_start_time_is_a_bug() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_key(DEFAULT_KEY_TEMPLATE, call(started_at=datetime(2021, 2, 17)), "wav", HCM)  # noqa: DTZ001


@pytest.mark.parametrize(
    "template", [DEFAULT_KEY_TEMPLATE, "{cdr_id}.{ext}", "{provider}/{yyyy}/{sip_call_id}.{ext}"]
)
def test_valid_templates(template: str) -> None:
    validate_template(template)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("recordings/{foo}/{sip_call_id}.{ext}", r"unknown placeholder \{foo\}"),
        ("recordings/{}/{sip_call_id}.{ext}", r"unknown placeholder \{\}"),
        ("recordings/{yyyy}.{ext}", r"needs \{sip_call_id\} or \{cdr_id\}"),
        ("recordings/{sip_call_id}", r"needs \{ext\}"),
        ("recordings/{sip_call_id!r}.{ext}", "no format spec"),
        ("recordings/{yyyy:>4}/{sip_call_id}.{ext}", "no format spec"),
        ("recordings/{sip_call_id.{ext}", "key template"),
        ("/recordings/{sip_call_id}.{ext}", "must not start with '/'"),
        ("recordings//{sip_call_id}.{ext}", "empty path segment"),
        ("recordings/../{sip_call_id}.{ext}", "starts with '.'"),
        ("recordings/.{sip_call_id}.{ext}", "starts with '.'"),
        ("rec\\ordings/{sip_call_id}.{ext}", "backslash"),
        ("manifests/{sip_call_id}.{ext}", "reserves"),
        ("_archiver/{sip_call_id}.{ext}", "reserves"),
    ],
)
def test_invalid_templates(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_template(template)


@pytest.mark.parametrize("key", ["a", "a/b.wav", "_archiver/x", "a/.b", "a..b"])
def test_valid_storage_keys(key: str) -> None:
    validate_key(key)


@pytest.mark.parametrize(
    "key", ["", "/a", "a/", "a//b", "../a", "a/../b", "a/./b", "a\\b", "a\x00"]
)
def test_invalid_storage_keys(key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        validate_key(key)


@pytest.mark.parametrize(
    ("sip", "cdr", "expected"),
    [
        ("abc", "cdr-2", "recordings/2021/02/17/abc~cdr-2.wav"),
        ("a/b", "x y", f"recordings/2021/02/17/{sanitize('a/b')}~{sanitize('x y')}.wav"),
    ],
)
def test_a_sibling_key_adds_the_cdr_id_beside_the_shared_name(sip, cdr, expected):
    c = call(sip_call_id=sip, cdr_id=cdr)
    key = render_key(DEFAULT_KEY_TEMPLATE, c, "wav", ZoneInfo("UTC"))
    sibling = sibling_key(key, c, "wav")
    assert sibling == expected
    validate_key(sibling)
    # "~" never survives sanitize: no call's plain key is another's sibling key.
    assert "~" not in sanitize("a~b")
    assert not names_cdr(DEFAULT_KEY_TEMPLATE)
    assert names_cdr("r/{cdr_id}.{ext}")
