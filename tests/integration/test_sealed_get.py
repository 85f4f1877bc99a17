"""``get`` of an id no line holds, in a sealed archive (a real local folder): the seal's
links name legacy objects by any key of a date partition, under their own writer and
number, so each is asked for by its key. Not found is exit 4; a legacy object gone, or a
seal's link that cannot be read, is an integrity error naming it (exit 5)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from archiver.commands.finding import find_call
from archiver.manifest.seal import seal
from archiver.retrieval.errors import CallNotFoundError, IntegrityError, IntegrityKind
from archiver.storage.local import LocalStore
from tests.support.legacy import legacy_archive, legacy_line

# A legacy key no writer's pattern parses: an old archiver's, sealed all the same.
ODD_KEY = "manifests/date=2021-02-18/legacy-batch.jsonl"


async def _sealed(root: Path) -> tuple[LocalStore, str]:
    store = LocalStore(root)
    await legacy_archive(store, manifests=2)
    content = (json.dumps(legacy_line(99, store)) + "\n").encode()
    sha = hashlib.sha256(content).hexdigest()
    await store.put_bytes(ODD_KEY, content, sha256=sha, content_type="application/x-ndjson")
    done = await seal(store)
    assert done.sealed == 3
    assert done.writer is not None
    return store, done.writer


async def test_not_found_until_a_sealed_legacy_object_or_its_link_goes(tmp_path: Path) -> None:
    store, writer = await _sealed(tmp_path / "archive")
    index = tmp_path / "index.sqlite3"
    with pytest.raises(CallNotFoundError):
        await find_call(store, index, "no-such-call")

    (tmp_path / "archive" / ODD_KEY).unlink()
    with pytest.raises(IntegrityError) as gone:
        await find_call(store, index, "no-such-call")
    assert gone.value.kind is IntegrityKind.MISSING
    assert ODD_KEY in str(gone.value)


async def test_a_seal_link_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    store, writer = await _sealed(tmp_path / "archive")
    link = tmp_path / "archive" / "_archiver" / "chain" / writer / "000000000002.json"
    link.chmod(0o600)
    link.write_bytes(b"not a link")
    with pytest.raises(IntegrityError) as broken:
        await find_call(store, tmp_path / "index.sqlite3", "no-such-call")
    assert broken.value.kind is IntegrityKind.MISSING
    assert f"_archiver/chain/{writer}/000000000002.json cannot be read" in str(broken.value)
