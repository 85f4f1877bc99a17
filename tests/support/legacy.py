"""An archive as the archiver wrote it before the manifest chain (what ``seal`` is for):
manifest objects whose lines carry no proof, and no link. Local or S3."""

from __future__ import annotations

import hashlib
import json

from archiver.retrieval.index import index_manifest
from archiver.storage import ObjectStore

WAV = b"RIFF" + bytes(range(256)) * 4


def legacy_line(n: int, store: ObjectStore) -> dict:
    """Line ``n`` as an archiver before contract v2 wrote it (no proof fields)."""
    data = WAV + str(n).encode()
    return {
        "sip_call_id": f"s{n}",
        "cdr_id": f"c{n}",
        "provider": "cdr_v2",
        "object_key": store.full_key(f"recordings/s{n}.wav"),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "call_started_at": "2021-02-17T08:00:00+07:00",
    }


async def legacy_archive(store: ObjectStore, manifests: int = 3) -> list[str]:
    """Manifest objects as the archiver wrote them before the chain: no proof, no link."""
    keys = []
    for m in range(manifests):
        lines = [legacy_line(m * 10 + i, store) for i in range(2)]
        for line in lines:
            data = WAV + line["sip_call_id"].removeprefix("s").encode()
            key = store.relative_key(line["object_key"])
            await store.put_bytes(key, data, sha256=line["sha256"], content_type="audio/wav")
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        key = f"manifests/date=2021-02-17/{m + 1:012d}-0123456789ab.jsonl"
        digest = hashlib.sha256(content).hexdigest()
        await store.put_bytes(key, content, sha256=digest, content_type="application/x-ndjson")
        await index_manifest(store, key, content)
        keys.append(key)
    return keys
