"""The Zstandard dictionary of the console index's packed lines: how it was made.

``python -m tests.bench.packing_dictionary [--out PATH]`` writes
``archiver/console/packing.zdict`` again: 16 KiB trained (zstd's fastcover, one
thread: the same input gives the same bytes) on 6,000 manifest lines of the
real ``ManifestEntry.build``, made from the simulator's CDRs (a seed no test or
bench reads, so the benches measure lines the dictionary never saw), in the
form :func:`archiver.console.packed.pack` compresses (S3's checksum elided).
Two storages' proofs: S3's (its ETag, the SHA-256 checksum, now and then a
version id) and a local folder's (none). Changing the dictionary changes the
index's format: bump ``PACKING`` in :mod:`archiver.console.packed` with it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import zstandard

from archiver.console.packed import DICTIONARY_SIZE, prepared
from archiver.manifest.entry import ManifestEntry
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.records import default_record
from archiver.sources.cdr_v2 import parse_record
from archiver.storage.base import ObjectProof

OUT = Path(__file__).resolve().parents[2] / "archiver" / "console" / "packing.zdict"
SEED = 2025
LINES = 6000


def training_lines(count: int = LINES, seed: int = SEED) -> list[bytes]:
    """``count`` manifest lines as :func:`~archiver.console.packed.pack` sees them."""
    rng = random.Random(seed)
    sim = Simulator(SimConfig(seed=seed, calls=count, span=timedelta(days=30)))
    lines: list[bytes] = []
    for i, sim_call in enumerate(sim.calls):
        base = "https://pbx.example.vn/recordings"
        call = parse_record(default_record(sim_call, f"{base}/{sim_call.filename}", sim.tz), sim.tz)
        digest = rng.randbytes(32)
        if i % 10 < 7:  # S3: its ETag and checksum
            proof = ObjectProof(
                etag=rng.randbytes(16).hex(),
                version_id=rng.randbytes(12).hex() if i % 10 == 0 else None,
                checksum_sha256=base64.b64encode(digest).decode(),
                checksum_type="FULL_OBJECT",
            )
        else:  # a local folder: no proof from a server
            proof = ObjectProof(etag=None)
        started = call.started_at
        entry = ManifestEntry.build(
            call,
            object_key=f"recordings/{started:%Y/%m/%d}/{call.sip_call_id}.wav",
            sha256=digest.hex(),
            size=rng.randrange(8_000, 4_000_000),
            content_type="audio/wav" if i % 3 else "audio/mpeg",
            archived_at=started + timedelta(seconds=rng.randrange(30, 3600)),
            proof=proof,
        )
        lines.append(prepared(entry.to_line().encode("utf-8")))
    return lines


def train(lines: list[bytes]) -> bytes:
    """The dictionary's bytes, trained on ``lines`` (deterministic: one thread)."""
    trained = zstandard.train_dictionary(DICTIONARY_SIZE, lines, level=3, threads=0, dict_id=25)
    return trained.as_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    made = datetime.now(UTC)
    data = train(training_lines())
    args.out.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()[:16]
    print(f"{args.out}: {len(data)} bytes, sha256 {digest} ({made:%F})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
