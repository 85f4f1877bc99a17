"""What sealing phone numbers (ARCHIVER_PRIVACY__KEYS) costs a line, written and read.

``python -m tests.bench.privacy_seal [--lines 20000] [--numbers 5000]``

In-process, on a key place in a temporary local folder: LINES manifest lines
whose callers are drawn from NUMBERS distinct numbers (the callee a hotline),
sealed as the pipeline seals them (:class:`archiver.privacy.lines.Sealer`, every
subject key read from its file; a new one written and fsynced), sealed again (every
key known), then opened as a reader does (:class:`Opener`, keys
cached), and searched by keyed hash. Prints one JSON line: microseconds a line
for each step, the key files made, and the bytes a sealed line adds.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from archiver.manifest.retention import phone_key
from archiver.privacy.keyplace import KeyPlace
from archiver.privacy.lines import Opener, Sealer


def _line(n: int, caller: str) -> dict[str, object]:
    return {
        "sip_call_id": f"{n:032x}@10.0.0.1",
        "cdr_id": f"cdr-{n}",
        "provider": "cdr_v2",
        "from_number": caller,
        "to_number": "19001919",
        "extension": "101",
    }


def main() -> None:
    """Measure and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--numbers", type=int, default=5_000)
    args = parser.parse_args()
    rng = random.Random(1)
    numbers = [f"09{rng.randrange(10**8):08d}" for _ in range(args.numbers)]
    plain = [_line(n, rng.choice(numbers)) for n in range(args.lines)]
    with tempfile.TemporaryDirectory() as tmp:
        place = KeyPlace.open(Path(tmp) / "keys", create=True)
        sealer = Sealer(place)
        started = time.perf_counter()
        sealed = [sealer.seal_fields(line) for line in plain]
        seal_s = time.perf_counter() - started
        # Again, every number's key now made: the steady state of a long-running archive.
        started = time.perf_counter()
        sealed = [sealer.seal_fields(line) for line in plain]
        reseal_s = time.perf_counter() - started
        opener = Opener(place)
        started = time.perf_counter()
        opened = [opener.fields(line) for line in sealed]
        open_s = time.perf_counter() - started
        assert all(o["from_number"] == p["from_number"] for o, p in zip(opened, plain, strict=True))
        wanted = opener.query_hashes("+84 " + numbers[0][1:])
        started = time.perf_counter()
        found = [s for s in sealed if s["from_number_hash"] in wanted]
        match_s = time.perf_counter() - started
        assert len(found) == sum(1 for p in plain if phone_key(str(p["from_number"])) == numbers[0])
        keys = len(list((Path(tmp) / "keys" / "subjects").iterdir()))
    added = sum(len(json.dumps(s)) - len(json.dumps(p)) for s, p in zip(sealed, plain, strict=True))
    print(
        json.dumps(
            {
                "lines": args.lines,
                "numbers": args.numbers,
                "subject_keys": keys,
                "seal_us_per_line": round(seal_s / args.lines * 1e6, 1),
                "seal_known_numbers_us_per_line": round(reseal_s / args.lines * 1e6, 1),
                "open_us_per_line": round(open_s / args.lines * 1e6, 1),
                "match_us_per_line": round(match_s / args.lines * 1e6, 2),
                "bytes_added_per_line": round(added / args.lines),
            }
        )
    )


if __name__ == "__main__":
    main()
