"""What issue 20's checks add to ``verify``: a versioned bucket's history, every token,
witnessed checkpoints. Wall time and S3 requests of each, beside verify's own.

``python -m tests.bench.insider_checks [--calls 2000] [--batch 10]``

Builds, in a throwaway SeaweedFS bucket with versioning, an archive of CALLS
recordings of 256 bytes in manifest batches of BATCH lines (so CALLS/BATCH links
and as many head versions), with :mod:`tests.bench.verify_scale`'s builder. Then,
in-process: the default verify, the version-history audit, and the check of the
chain against one witnessed checkpoint (with the writer's registration). Tokens
are not measured here: ``docs/compliance.md`` gives their cost per token. Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archiver.manifest.reader import list_manifests
from archiver.retrieval.history_audit import audit_history
from archiver.retrieval.verify import verify_archive
from archiver.retrieval.witness_audit import audit_witnesses
from archiver.settings import StorageSettings
from archiver.storage import open_store
from archiver.witness.checkpoint import Checkpoint
from archiver.witness.note import Signer, sign_note
from archiver.witness.place import checkpoint_name, write_checkpoint
from archiver.witness.registry import register_writer
from tests.bench import verify_scale
from tests.support.seaweed import SeaweedProcess, admin_client


async def measure(settings: StorageSettings, calls: int, place: str) -> dict[str, Any]:
    async with open_store(settings, max_connections=64) as store:
        t0 = time.monotonic()
        links = await verify_scale.build(store, calls, 256)
        built = time.monotonic() - t0
    requests: Counter[str] = Counter()
    figures: dict[str, Any] = {"recordings": calls, "links": links, "build_s": round(built, 1)}
    async with open_store(settings, max_connections=24) as store:
        client = getattr(store, "client")  # noqa: B009 (an S3 store)
        client.meta.events.register(
            "before-call.s3.*", lambda model, **_: requests.update([model.name])
        )

        async def timed(name: str, work: Any) -> Any:
            requests.clear()
            t0 = time.monotonic()
            result = await work
            figures[f"{name}_s"] = round(time.monotonic() - t0, 2)
            figures[f"{name}_requests"] = dict(requests)
            return result

        listed = await list_manifests(store, None, None, UTC)
        report = await timed("verify", verify_archive(store, listed, tz=UTC, concurrency=16))
        assert report.ok, [p.line() for p in report.problems[:5]]
        assert report.chains is not None
        history = await timed("history", audit_history(store, report.chains.state, None))
        assert not history.problems, [p.line() for p in history.problems[:5]]
        figures["head_versions"] = history.head_versions
        signer = Signer.generate("bench.example/w")
        now = datetime.now(UTC)
        await register_writer(store, signer, "bench", verify_scale.WRITER, now)
        made = Checkpoint.of("bench", report.chains.state)
        await write_checkpoint(
            place, settings, checkpoint_name(made, now), sign_note(made.text(), signer, now)
        )
        witness = await timed(
            "witness",
            audit_witnesses(
                store,
                report.chains.state,
                report.chains.writer_ids,
                [place],
                [signer.verifier],
                settings,
            ),
        )
        assert not witness.problems, [p.line() for p in witness.problems]
    return figures


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    verify_scale.BATCH[0] = args.batch
    with tempfile.TemporaryDirectory(prefix="insider-bench-") as tmp:
        process = SeaweedProcess(Path(tmp))
        server = process.start()
        try:
            async with admin_client(server) as client:
                await client.create_bucket(Bucket="bench")
                await client.put_bucket_versioning(
                    Bucket="bench", VersioningConfiguration={"Status": "Enabled"}
                )
            for name, value in (
                ("AWS_ACCESS_KEY_ID", server.access_key),
                ("AWS_SECRET_ACCESS_KEY", server.secret_key),
                ("AWS_DEFAULT_REGION", server.region),
            ):
                os.environ[name] = value
            settings = StorageSettings(
                url="s3://bench/verify", endpoint_url=server.endpoint_url, addressing_style="path"
            )
            return await measure(settings, args.calls, str(Path(tmp) / "checkpoints"))
        finally:
            process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10)
    print(json.dumps(asyncio.run(main_async(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
