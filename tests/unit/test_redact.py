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
        ("GET https://admin:hunter2@rec.example/a.mp3 failed", "hunter2"),
        ("fetching http://alice:pw%40x@10.0.0.1:8080/a.wav?x=1", "pw%40x"),
        ("s3 endpoint https://AKIAXYZ:s3cr3t@minio.local/bucket", "s3cr3t"),
        ('{"url": "https://u:p4ss@h/x"}', "p4ss"),
        ("redirect to //bob:pa55@cdn.example/x", "pa55"),
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
        "archived abc@pc33.example.com to recordings/2021/02/17/abc@pc33.example.com.wav",
        "GET https://rec.example/a@b.mp3 answered 404",
    ],
)
def test_plain_messages_are_left_alone(text):
    assert redact(text) == text
