"""Property tests of the key layout: whatever a provider puts in a call, the key stays put."""

from __future__ import annotations

import sys
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.errors import BadRecordError
from archiver.models import CallRecord, Provider
from archiver.settings import DEFAULT_KEY_TEMPLATE
from archiver.storage.keys import RESERVED_TOP_LEVEL, render_key, sanitize, validate_key

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
EVERY = "{provider}/{yyyy}/{mm}/{dd}/{hh}/{direction}/{extension}/{cdr_id}-{sip_call_id}.{ext}"
nasty = st.one_of(
    st.text(max_size=400),
    st.text(alphabet=st.sampled_from(["/", "\\", ".", "\x00", "%", "\u202e", " "]), max_size=40),
    st.text(alphabet=st.characters(categories=["Cs", "Cc", "Lo", "Mn"]), max_size=50),
    st.sampled_from(["..", ".", "", " ", "manifests", "_archiver", "../_archiver"]),
)


def call(sip: str, cdr: str, extension: str) -> CallRecord:
    return CallRecord(
        provider=Provider.CDR_V2,
        cdr_id=cdr or "c",
        sip_call_id=sip,
        started_at=datetime(2021, 2, 17, 17, 30, tzinfo=UTC),
        extension=extension,
    )


@settings(max_examples=300)
@given(sip=nasty, cdr=nasty, extension=nasty)
def test_default_template_keeps_every_id_in_one_segment_of_its_folder(
    sip: str, cdr: str, extension: str
) -> None:
    key = render_key(DEFAULT_KEY_TEMPLATE, call(sip, cdr, extension), "wav", HCM)
    validate_key(key)
    folder, _, name = key.rpartition("/")
    assert folder == "recordings/2021/02/18"
    assert name == sanitize(sip) + ".wav"
    assert name.isascii()
    assert not name.startswith(".")
    assert len(name) <= 132


@settings(max_examples=300)
@given(sip=nasty, cdr=nasty, extension=nasty)
def test_every_placeholder_makes_a_valid_key_or_a_refusal(
    sip: str, cdr: str, extension: str
) -> None:
    try:
        key = render_key(EVERY, call(sip, cdr, extension), "mp3", HCM)
    except BadRecordError:
        return  # only for values that would reach a reserved folder
    validate_key(key)
    segments = key.split("/")
    assert len(segments) == 8
    assert segments[0] not in RESERVED_TOP_LEVEL
    assert key.isascii()


@given(a=st.text(max_size=300), b=st.text(max_size=300))
def test_distinct_ids_get_distinct_segments(a: str, b: str) -> None:
    import unicodedata

    if unicodedata.normalize("NFC", a).strip() != unicodedata.normalize("NFC", b).strip():
        assert sanitize(a) != sanitize(b)


def test_every_control_character_and_only_those_is_refused_in_a_key() -> None:
    # The check is a compiled pattern, not unicodedata per character: it must refuse
    # exactly Unicode's "Cc" code points, over the whole code space.
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if char in "/\\" or 0xD800 <= code <= 0xDFFF:
            continue
        control = unicodedata.category(char) == "Cc"
        try:
            validate_key(f"a/b{char}c")
        except ValueError:
            assert control, f"U+{code:04X} refused"
        else:
            assert not control, f"U+{code:04X} accepted"
