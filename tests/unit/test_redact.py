import pytest

from archiver.logs import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET http://h/signed/a.mp3?expires=1&signature=deadbeef failed", "deadbeef"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ('body {"api_key": "k123", "api_secret": "s456"}', "s456"),
        ("api_key=k123&page=1", "k123"),
        ("token=tok999", "tok999"),
    ],
)
def test_secrets_are_masked(text, secret):
    assert secret not in redact(text)
    assert "<redacted>" in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "ARCHIVER_SOURCE__TOKEN: required for ARCHIVER_SOURCE__KIND=cdr_v2",
        "archived 5 recording(s) to recordings/2021/02/17/x.wav",
    ],
)
def test_plain_messages_are_left_alone(text):
    assert redact(text) == text
