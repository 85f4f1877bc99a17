"""Reading a chain object's JSON (pure)."""

from __future__ import annotations

import json
import random

from archiver.manifest.chain import Link, json_bytes


def test_json_bytes_reads_exactly_what_json_loads_reads() -> None:
    link = Link("w1", 2, "manifests/a.jsonl", "a" * 64, 10, 1, 1, "b" * 64).to_bytes()
    rnd = random.Random(5)
    cases = [
        link,
        link + b" \n\t\r",
        link + b" x",
        link + b"{}",
        b"{",
        b"{}",
        b'{"a": "\\ud800"}',
        b'{"a": "\xed\xa0\x80"}',  # a surrogate, UTF-8 encoded: json.loads takes it
        b'{"a": "\xff"}',
        b"{\x00\x00\x00",
        b"{\x00",
        '{"a": 1}'.encode("utf-16-le"),
        b'{"a": 1}\n\n',
        b'{"a": 1} \x0b',
    ]
    for _ in range(400):
        mutated = bytearray(link)
        for _ in range(rnd.randint(1, 3)):
            mutated[rnd.randrange(1, len(mutated))] = rnd.choice(b' "{}[],:\\\x00\n\xffa0')
        cases.append(bytes(mutated))
    for case in cases:
        try:
            expected: object = json.loads(case)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            expected = type(exc)
        try:
            got: object = json_bytes(case)
        except ValueError as exc:
            got = type(exc)
        assert got == expected, case
