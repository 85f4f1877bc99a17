"""Every alteration an attacker with write access could make, caught by ``verify`` and ``get``.

For each storage (a local directory; S3 without versions, versioned, with
Object Lock) and each alteration, a fresh archive is written by an in-process
backfill, altered from outside the archiver, then audited with the CLI on a
machine with no state: the default ``verify`` (no ``--deep``) exits 5 naming
what is wrong, and ``get`` refuses (exit 5, no file written), except where a
versioned bucket still holds the recorded version, which ``get`` serves,
saying the current object is another.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from archiver.manifest.reader import parse_manifest
from archiver.retrieval.index import pointer_body, pointer_keys
from archiver.settings import StorageSettings
from archiver.simulator import SimConfig, Simulator
from archiver.storage import open_store
from tests.support.cli import cli_env, run_cli, s3_storage_env
from tests.support.pipeline import backfill, make_settings
from tests.support.seaweed import admin_client

pytestmark = pytest.mark.slow

BUFFER_BOUND = 64 * 1024  # recordings above it go up as multipart uploads
KINDS = ("local", "s3", "s3-versioned", "s3-locked")
SCENARIOS = {
    "overwrite": KINDS,
    "forged-metadata": KINDS[1:],
    "multipart-overwrite": KINDS,
    "byte-flip": ("local",),
    "manifest-deleted": KINDS,
    "manifest-hidden": KINDS[2:],
    "manifest-edited": KINDS,
    "pointer-wrong-line": KINDS,
}
CASES = [(kind, scenario) for scenario, kinds in SCENARIOS.items() for kind in kinds]


@dataclass
class Archive:
    kind: str
    storage: StorageSettings
    env: dict[str, str]
    fresh: Path
    bucket: str | None
    prefix: str
    lines: list[dict[str, Any]]  # every manifest line, with "_manifest" set to its object key

    def path(self, key: str) -> Path:
        return Path(self.storage.url) / key


async def _archive(kind, tmp_path, make_bucket, s3_settings, s3_env, seaweed) -> Archive:
    sim = Simulator(SimConfig(seed=21, calls=8, recording_fraction=1.0, max_size=150_000))
    env: dict[str, str] = {}
    bucket = None
    if kind == "local":
        storage = StorageSettings(url=str(tmp_path / "archive"), buffer_bound=BUFFER_BOUND)
    else:
        bucket = await make_bucket(object_lock=kind == "s3-locked")
        extra: dict[str, Any] = {"buffer_bound": BUFFER_BOUND}
        if kind == "s3-locked":
            extra |= {"object_lock_mode": "GOVERNANCE", "retention_days": 1}
            env |= {
                "ARCHIVER_STORAGE__OBJECT_LOCK_MODE": "GOVERNANCE",
                "ARCHIVER_STORAGE__RETENTION_DAYS": "1",
            }
        if kind == "s3-versioned":
            async with admin_client(seaweed) as client:
                await client.put_bucket_versioning(
                    Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
                )
        storage = s3_settings(bucket, **extra)
        env |= s3_storage_env(storage, s3_env)
    env["ARCHIVER_STORAGE__URL"] = storage.url
    builder = tmp_path / "builder"
    builder.mkdir()
    async with sim.serve() as base:
        settings = make_settings(sim, base, storage, str(builder / "state.sqlite3"))
        await backfill(settings, sim)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    env |= {"ARCHIVER_STATE__URL": str(fresh / "state.sqlite3")}
    prefix = storage.bucket_and_prefix[1] if storage.is_s3 else ""
    archive = Archive(kind, storage, cli_env(env), fresh, bucket, prefix, [])
    for key, content in (await _objects(archive, "manifests/")).items():
        assert parse_manifest(key, content).bad_lines == []
        archive.lines += [{**json.loads(raw), "_manifest": key} for raw in content.splitlines()]
    return archive


async def _objects(archive: Archive, under: str) -> dict[str, bytes]:
    """Every object under ``under`` (relative keys), read through the archiver's own store."""
    async with open_store(archive.storage) as store:
        keys = [obj.key async for obj in store.list(under)]
        return {key: b"".join([c async for c in store.read(key)]) for key in keys}


async def _put(archive: Archive, seaweed, key: str, data: bytes, **extra: Any) -> None:
    """Write ``data`` under ``key`` from outside the archiver: a plain PUT, or a file write."""
    if archive.bucket is None:
        # A pointer is planted where none was (get writes none since issue 14).
        archive.path(key).parent.mkdir(parents=True, exist_ok=True)
        archive.path(key).write_bytes(data)
        return
    async with admin_client(seaweed) as client:
        await client.put_object(Bucket=archive.bucket, Key=archive.prefix + key, Body=data, **extra)


async def _delete(archive: Archive, seaweed, key: str, *, every_version: bool) -> None:
    if archive.bucket is None:
        archive.path(key).unlink()
        return
    full = archive.prefix + key
    async with admin_client(seaweed) as client:
        if not every_version:
            await client.delete_object(Bucket=archive.bucket, Key=full)
            return
        listed = await client.list_object_versions(Bucket=archive.bucket, Prefix=full)
        versions = [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == full]
        for version in versions or [None]:
            extra = {"VersionId": version, "BypassGovernanceRetention": True} if version else {}
            await client.delete_object(Bucket=archive.bucket, Key=full, **extra)


def _line(archive: Archive, *, multipart: bool = False) -> dict[str, Any]:
    for line in archive.lines:
        if (line["size"] > BUFFER_BOUND) == multipart:
            return line
    raise AssertionError("no such recording in the archive")


def _same_size_other_bytes(size: int) -> bytes:
    return (b"RIFF" + bytes(range(256)) * (size // 256 + 1))[:size]


def _relative(archive: Archive, line: dict[str, Any]) -> str:
    return str(line["object_key"]).removeprefix(archive.prefix)


async def _alter(archive: Archive, scenario: str, seaweed) -> tuple[str, str, dict[str, Any]]:
    """Make the alteration; returns (verify's expected kinds, the key it names, get's target)."""
    line = _line(archive, multipart=scenario == "multipart-overwrite")
    key = _relative(archive, line)
    if scenario in ("overwrite", "multipart-overwrite"):
        await _put(archive, seaweed, key, _same_size_other_bytes(line["size"]))
        return "ALTERED CORRUPT", key, line
    if scenario == "forged-metadata":
        forged = _same_size_other_bytes(line["size"])
        await _put(archive, seaweed, key, forged, Metadata={"sha256": line["sha256"]})
        return "ALTERED CORRUPT", key, line
    if scenario == "byte-flip":
        data = bytearray(archive.path(key).read_bytes())
        data[len(data) // 2] ^= 0x01
        archive.path(key).write_bytes(bytes(data))
        return "CORRUPT", key, line
    manifest = str(line["_manifest"])
    if scenario == "manifest-deleted":
        await _delete(archive, seaweed, manifest, every_version=True)
        return "MANIFEST-MISSING", manifest, line
    if scenario == "manifest-hidden":
        await _delete(archive, seaweed, manifest, every_version=False)
        return "MANIFEST-HIDDEN", manifest, line
    if scenario == "manifest-edited":
        # Another line of the same object is edited: the line get serves is untouched,
        # only the chain link tells the object is not the one written.
        content = (await _objects(archive, manifest))[manifest]
        rows = [json.loads(raw) for raw in content.splitlines()]
        assert len(rows) >= 2, "the edit needs a second line in the manifest object"
        target = next(r for r in rows if r["sip_call_id"] == line["sip_call_id"])
        other = next(r for r in rows if r["sip_call_id"] != line["sip_call_id"])
        other["agent"] = "someone-else"
        edited = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        if archive.bucket is None:
            archive.path(manifest).chmod(0o644)
        extra: dict[str, Any] = {}
        if archive.kind == "s3-locked":
            digest = hashlib.sha256(edited).digest()
            extra = {"ChecksumSHA256": base64.b64encode(digest).decode()}
        await _put(archive, seaweed, manifest, edited, **extra)
        return "MANIFEST-ALTERED", manifest, target
    assert scenario == "pointer-wrong-line"
    from archiver.manifest.entry import ManifestEntry

    wrong = ManifestEntry.from_line({**line, "sha256": "0" * 64}, manifest)
    pointer = pointer_keys(ManifestEntry.from_line(line, manifest))[0]
    await _put(archive, seaweed, pointer, pointer_body(wrong))
    return "INDEX", pointer, line


def _names(out: str, kinds: str, key: str) -> list[str]:
    return [
        row
        for row in out.splitlines()
        if row.split(" ", 1)[0] in kinds.split() and row.split(" ")[1].rstrip(":") == key
    ]


@pytest.mark.parametrize(("kind", "scenario"), CASES)
async def test_the_default_verify_and_get_catch_it(
    kind, scenario, tmp_path, make_bucket, s3_settings, s3_env, seaweed
):
    archive = await _archive(kind, tmp_path, make_bucket, s3_settings, s3_env, seaweed)
    clean = await run_cli("verify", env=archive.env, cwd=archive.fresh)
    assert clean.code == 0, clean.out + clean.err
    assert "all intact" in clean.out

    kinds, key, target = await _alter(archive, scenario, seaweed)

    verified = await run_cli("verify", env=archive.env, cwd=archive.fresh)
    assert verified.code == 5, verified.out + verified.err
    named = _names(verified.out, kinds, key)
    assert named, f"no {kinds} line for {key}:\n{verified.out}"
    if kinds in ("ALTERED CORRUPT", "CORRUPT", "INDEX"):
        assert f"(sip_call_id {target['sip_call_id']}, cdr {target['cdr_id']})" in named[0]
    assert "all intact" not in verified.out

    out = archive.fresh / "out"
    out.mkdir()
    got = await run_cli(
        "get", target["sip_call_id"], "-o", str(out / "r.wav"), env=archive.env, cwd=archive.fresh
    )
    pinned = kind in ("s3-versioned", "s3-locked") and kinds.startswith("ALTERED")
    forged = scenario == "pointer-wrong-line"
    if pinned:
        # The recorded version is intact: get serves it, and says the current object is not.
        assert got.code == 0, got.err
        assert "the current object is not the archived recording" in got.err
        digest = hashlib.sha256((out / "r.wav").read_bytes()).hexdigest()
        assert digest == target["sha256"]
    elif forged:
        # A forged pointer never hides the genuine call (issue 20): the line the chain
        # proves is served, verified, and the pointer is named as not served.
        assert got.code == 0, got.err
        assert "not served" in got.err
        assert "does not match its manifest object" in got.err
        digest = hashlib.sha256((out / "r.wav").read_bytes()).hexdigest()
        assert digest == target["sha256"]
    else:
        assert got.code == 5, (got.code, got.out, got.err)
        assert list(out.iterdir()) == [], "a file was left behind"
    url = await run_cli("get", target["sip_call_id"], "--url", env=archive.env, cwd=archive.fresh)
    if pinned:
        assert url.code == 0, url.err
        assert "versionId=" in url.out
    elif forged:
        assert url.code == 0, url.err
        assert "does not match its manifest object" in url.err
        assert url.out.strip()
    else:
        assert url.code == 5, (url.code, url.out, url.err)
        assert url.out == ""
