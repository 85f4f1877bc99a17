"""The version history in bounded memory and requests (``archiver.retrieval.history_audit``):
a head's versions are taken a key at a time, and each is proven by its listed ETag (the
MD5 of the head a link of the chain makes) instead of read; one that is not (an
encrypted bucket's ETag, a head planted or left by a rewrite) is read, as before. The
findings are those of reading every version, on an intact archive, after a rewrite
and after a truncation, in a versioned bucket and one with Object Lock."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from archiver.retrieval.chain_audit import audit_chains
from archiver.retrieval.history_audit import History, audit_history
from archiver.storage import open_store
from archiver.storage.base import ObjectVersion
from tests.adversary.conftest import VERSIONED, Target
from tests.adversary.insider import insider
from tests.support.counting import Counting


class _Versions(Counting):
    """The bucket, counting the versions read; ``hide_etags``: listed without ETags (as an
    encrypted bucket's, which are no MD5)."""

    def __init__(self, store: Any, hide_etags: bool) -> None:
        super().__init__(store)
        self.hide_etags = hide_etags
        self.version_reads: list[tuple[str, str]] = []

    async def all_versions(self, prefix: str) -> AsyncIterator[tuple[str, ObjectVersion]]:
        async for key, version in self._store.all_versions(prefix):
            yield key, dataclasses.replace(version, etag=None) if self.hide_etags else version

    async def read_version(self, key: str, version_id: str, *args: Any) -> AsyncIterator[bytes]:
        self.version_reads.append((key, version_id))
        async for chunk in self._store.read_version(key, version_id, *args):
            yield chunk


async def _history(target: Target, hide_etags: bool) -> tuple[History, _Versions]:
    async with open_store(target.storage) as store:
        chains = await audit_chains(store)
        versions = _Versions(store, hide_etags)
        return await audit_history(versions, chains.state, None), versions


def _found(history: History) -> list[tuple[str, str, str]]:
    return sorted((p.kind.value, p.where, p.detail) for p in history.problems)


@pytest.mark.parametrize("target", VERSIONED, indirect=True)
async def test_an_intact_archive_s_head_versions_are_proven_without_a_read(target: Target):
    proven, listed = await _history(target, hide_etags=False)
    read, every = await _history(target, hide_etags=True)
    assert proven.problems == read.problems == []
    assert proven.head_versions == read.head_versions >= 3  # one a manifest batch
    assert listed.version_reads == []
    assert len(every.version_reads) == read.head_versions


@pytest.mark.parametrize("target", VERSIONED, indirect=True)
@pytest.mark.parametrize("attack", ["rewrite", "truncate"])
async def test_after_a_rewrite_or_truncation_the_findings_are_those_of_reading_all(
    target: Target, seaweed, attack: str
):
    async with insider(target, seaweed) as ins:
        (writer,) = await ins.writers()
        head = await ins.head(writer)
        if attack == "rewrite":
            await ins.consistent_rewrite(writer, head.seq - 1)
        else:
            await ins.truncate(writer)
    proven, listed = await _history(target, hide_etags=False)
    read, _ = await _history(target, hide_etags=True)
    assert _found(proven) == _found(read)
    head_key = f"_archiver/chain/{writer}/head.json"
    assert any(p.where == head_key and p.kind.value == "chain-rewritten" for p in proven.problems)
    # The versions the rewritten chain no longer makes are read; the rest are not.
    assert 0 < len(listed.version_reads) < proven.head_versions
