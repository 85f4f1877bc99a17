"""verify's duplicates on its scratch file find what the in-memory CallLines over every line
finds, whatever the lines, the records and the hash (a forced collision changes nothing)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
from datetime import UTC
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.manifest.reader import list_manifests, parse_manifest
from archiver.manifest.supersede import Supersession
from archiver.retrieval.duplicates import CallLines, Identity
from archiver.retrieval.problems import ProblemKind
from archiver.retrieval.scratch import open_scratch
from archiver.retrieval.verify import verify_archive
from archiver.retrieval.verify_scratch import (
    ArchivedTimes,
    IdentityHash,
    VerifyScratch,
    identity_hash,
)
from archiver.storage.local import LocalStore

PROVIDERS = ["cdr_v2", "epacific"]
MOMENTS = ["2021-02-18T00:00:00Z", "2021-02-18T00:00:01Z", "2021-02-19T00:00:00Z", "garbled", None]

HASHES: dict[str, IdentityHash] = {
    "blake2b": identity_hash,
    "every-call-collides": lambda _identity: 0,
    "half-collide": lambda identity: len(identity[1]) % 2,
}


def _line(provider: str, cdr: str, archived: str | None) -> dict[str, object]:
    line: dict[str, object] = {
        "sip_call_id": f"sip-{cdr}",
        "cdr_id": cdr,
        "provider": provider,
        "object_key": f"recordings/{provider}/{cdr}.mp3",
        "sha256": "0" * 64,
        "size": 1,
    }
    if archived is not None:
        line["archived_at"] = archived
    return line


lines = st.tuples(
    st.sampled_from(PROVIDERS),
    st.sampled_from(["1", "2", "33", "444", "5"]),
    st.sampled_from(MOMENTS),
)
archives = st.lists(st.lists(lines, min_size=1, max_size=5), min_size=1, max_size=6)


def _write(root: Path, archive: list[list[tuple[str, str, str | None]]]) -> dict[str, bytes]:
    objects = {}
    for i, manifest in enumerate(archive):
        key = f"manifests/date=2021-02-17/{i:012d}-w.jsonl"
        body = b"\n".join(json.dumps(_line(*call)).encode() for call in manifest) + b"\n"
        # A blank line and a bad one: line numbers are the object's, not the calls'.
        if i % 2:
            body = b"\nnot json\n" + body
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(body)
        objects[key] = body
    return objects


def _records(objects: dict[str, bytes], picks: list[tuple[int, int, int]]) -> list[Supersession]:
    """Records naming lines that exist (some of one call, some not), and one that does not."""
    located = []
    for key, body in sorted(objects.items()):
        manifest = parse_manifest(key, body)
        located += [
            (c.identity, (key, n)) for c, n in zip(manifest.calls, manifest.numbers, strict=True)
        ]
    records = []
    for who, kept, gone in picks:
        identity: Identity = located[who % len(located)][0]
        records.append(
            Supersession(
                *identity,
                "sip",
                located[kept % len(located)][1],
                located[gone % len(located)][1],
                record_key="_archiver/supersede/000000000001-w.jsonl",
            )
        )
    return records


async def _both(root: Path, objects: dict[str, bytes], records, hasher, whole: bool):
    reference = CallLines()
    memo = VerifyScratch(sqlite3.connect(":memory:"), hasher)
    for key, body in objects.items():  # the read order
        manifest = parse_manifest(key, body)
        pairs = list(zip(manifest.calls, manifest.numbers, strict=True))
        for call, line in pairs:
            reference.add(call, (key, line))
        number = memo.read(manifest, None)
        assert number is not None
        memo.lines(number, pairs)
    expected = reference.duplicates(records, whole=whole)
    found = await memo.duplicates(LocalStore(root), records, whole=whole)
    return expected, found


@settings(max_examples=150)
@given(
    archive=archives,
    picks=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40)), max_size=4
    ),
    hasher=st.sampled_from(sorted(HASHES)),
    whole=st.booleans(),
)
def test_the_scratch_finds_what_the_lines_in_memory_find(archive, picks, hasher, whole) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        objects = _write(root, archive)
        records = _records(objects, picks)
        expected, found = asyncio.run(_both(root, objects, records, HASHES[hasher], whole))
    assert found == expected


def test_a_forced_collision_never_makes_a_duplicate(tmp_path: Path) -> None:
    objects = _write(
        tmp_path, [[("cdr_v2", "1", None), ("cdr_v2", "2", None)], [("epacific", "1", None)]]
    )
    (_, _), (problems, superseded) = asyncio.run(
        _both(tmp_path, objects, [], HASHES["every-call-collides"], True)
    )
    assert (problems, superseded) == ([], 0)


def test_a_duplicate_names_both_lines_and_carries_its_call(tmp_path: Path) -> None:
    objects = _write(
        tmp_path,
        [
            [("cdr_v2", "1", "2021-02-19T00:00:00Z")],
            [("cdr_v2", "2", None), ("cdr_v2", "1", "2021-02-18T00:00:00Z")],
        ],
    )
    (_, _), (problems, _) = asyncio.run(_both(tmp_path, objects, [], identity_hash, True))
    [problem] = problems
    assert problem.kind is ProblemKind.DUPLICATE
    # The earliest archived stands (the second object's), the first one read is the duplicate.
    assert problem.where == "manifests/date=2021-02-17/000000000000-w.jsonl line 1"
    assert "the first is manifests/date=2021-02-17/000000000001-w.jsonl line 4" in problem.detail
    assert problem.call is not None
    assert problem.call.identity == ("cdr_v2", "1")


def test_a_manifest_changed_before_it_is_read_again_is_said(tmp_path: Path) -> None:
    objects = _write(tmp_path, [[("cdr_v2", "1", None)], [("cdr_v2", "1", None)]])
    memo = VerifyScratch(sqlite3.connect(":memory:"))
    for key, body in objects.items():
        manifest = parse_manifest(key, body)
        number = memo.read(manifest, None)
        assert number is not None
        memo.lines(number, zip(manifest.calls, manifest.numbers, strict=True))
    changed = "manifests/date=2021-02-17/000000000001-w.jsonl"
    (tmp_path / changed).write_bytes(objects[changed] + b"\n")
    problems, _ = asyncio.run(memo.duplicates(LocalStore(tmp_path), [], whole=True))
    assert [(p.kind, p.where) for p in problems] == [(ProblemKind.MANIFEST_ALTERED, changed)]


async def test_the_archived_times_on_the_scratch_file_are_those_of_the_dict(
    tmp_path: Path,
) -> None:
    """With a caller's scratch, ``report.archived`` is a view of the scratch file's rows:
    the same latest archived_at per manifest object as the dict without one."""
    archive = [
        [("cdr_v2", "1", MOMENTS[0]), ("cdr_v2", "2", MOMENTS[2])],
        [("epacific", "5", None)],
        [("cdr_v2", "33", MOMENTS[1]), ("cdr_v2", "444", "garbled")],
    ]
    _write(tmp_path, archive)
    store = LocalStore(tmp_path)
    listed = await list_manifests(store, None, None, UTC)
    in_memory = await verify_archive(store, listed, keep_archived=True, scratch_dir=tmp_path)
    assert len(in_memory.archived) == 2
    with open_scratch(tmp_path, "verify") as db:
        on_file = await verify_archive(store, listed, keep_archived=True, scratch=db)
        assert isinstance(on_file.archived, ArchivedTimes)
        assert dict(on_file.archived) == dict(in_memory.archived)
        assert list(on_file.archived) == sorted(in_memory.archived)
        assert len(on_file.archived) == 2
        assert on_file.archived.get(listed[1].key) is None  # no archived_at in it
    with open_scratch(tmp_path, "verify") as db:
        unasked = await verify_archive(store, listed, keep_archived=False, scratch=db)
        assert dict(unasked.archived) == {}
