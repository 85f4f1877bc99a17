"""Pure pieces of issue 21: the warnings' repeat filter and the AWS credentials' places."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from archiver.errors import ConfigError
from archiver.logs import RepeatFilter
from archiver.settings import read_aws_credentials


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("archiver.http", level, __file__, 1, msg, args, None)


def test_a_repeated_warning_is_shown_once_then_summarised() -> None:
    clock = Clock()
    repeats = RepeatFilter(every=60, forget=300, clock=clock)
    shown = []
    for second in range(0, 130):
        clock.now = float(second)
        r = record("retrying in %.1fs after attempt %d: %s", 0.5, second, "GET x: refused")
        if repeats.filter(r):
            shown.append(r.getMessage())
    assert len(shown) == 3, shown
    assert shown[0] == "retrying in 0.5s after attempt 0: GET x: refused"
    assert shown[1].endswith("(59 more like it in the last 60 s, first 60 s ago)"), shown[1]
    assert shown[2].endswith("(59 more like it in the last 60 s, first 120 s ago)"), shown[2]


def test_other_warnings_info_and_a_new_fault_pass() -> None:
    clock = Clock()
    repeats = RepeatFilter(every=60, forget=300, clock=clock)
    assert repeats.filter(record("poll failed: %s", "A"))
    assert repeats.filter(record("poll failed: %s", "B"))  # another error
    assert not repeats.filter(record("poll failed: %s", "A"))
    assert repeats.filter(record("poll: %s", "A", level=logging.INFO))
    clock.now = 301.0  # quiet for longer than forget: a new fault, shown at once
    assert repeats.filter(record("poll failed: %s", "B"))
    # A message with % in its repeated argument is still formatted.
    clock.now = 400.0
    assert repeats.filter(record("bad: %s", "100%"))
    clock.now = 401.0
    assert not repeats.filter(record("bad: %s", "100%"))
    clock.now = 470.0
    r = record("bad: %s", "100%")
    assert repeats.filter(r)
    assert r.getMessage().startswith("bad: 100% (1 more like it")


def test_the_filter_remembers_a_bounded_number_of_kinds() -> None:
    repeats = RepeatFilter(clock=Clock())
    for n in range(RepeatFilter.MAX_KEYS * 3):
        repeats.filter(record("skipped: %s", f"reason {n}"))
    assert len(repeats._seen) <= RepeatFilter.MAX_KEYS


def test_aws_keys_come_from_the_environment_before_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / "site.env"
    env_file.write_text("AWS_ACCESS_KEY_ID=FILEKEY\nAWS_SECRET_ACCESS_KEY=filesecret\n")
    from_file = read_aws_credentials(env_file, environ={})
    assert from_file.access_key_id == "FILEKEY"
    assert from_file.description == f"AWS_ACCESS_KEY_ID from {env_file}"
    assert "filesecret" not in repr(from_file)
    environ = {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "envsecret"}
    from_env = read_aws_credentials(env_file, environ=environ)
    assert from_env.access_key_id == "ENVKEY"
    assert from_env.description == "AWS_ACCESS_KEY_ID from the environment"
    assert read_aws_credentials(tmp_path / "absent.env", environ={}).description is None


@pytest.mark.parametrize(
    "text",
    [
        "AWS_ACCESS_KEY_ID=AKIAKEYVALUE\n",
        "AWS_SECRET_ACCESS_KEY=secretvalue\n",
        "AWS_ACCESS_KEY_ID=AKIAKEYVALUE\nAWS_SECRET_ACCESS_KEY=\n",
    ],
)
def test_half_a_key_pair_is_refused_naming_no_value(tmp_path: Path, text: str) -> None:
    env_file = tmp_path / "site.env"
    env_file.write_text(text)
    with pytest.raises(ConfigError, match=f"is set in {env_file} but") as caught:
        read_aws_credentials(env_file, environ={})
    assert "AKIAKEYVALUE" not in str(caught.value)
    assert "secretvalue" not in str(caught.value)


def test_a_warning_logged_with_each_is_never_hidden() -> None:
    repeats = RepeatFilter(clock=Clock())
    for _ in range(3):
        r = record("skipped a CDR the provider sent: %s", "missing id")
        r.each = True
        assert repeats.filter(r)


def test_the_same_words_about_another_recording_are_another_line() -> None:
    repeats = RepeatFilter(clock=Clock())
    shown = []
    for call in ("a@x", "b@x", "a@x"):
        r = record("recording not ready yet")
        r.sip_call_id = call
        shown.append(repeats.filter(r))
    assert shown == [True, True, False]
