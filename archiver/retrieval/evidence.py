"""An evidence package: a case's recordings with everything that proves them, in one ZIP.

A third party checks it without the archiver (VERIFY.txt says how)::

    calls.json           the calls: file, provider, cdr id, sip_call_id, manifest object
    case.json            the case (reference, reason, who opened it, its history)
    recordings/...       the recordings, as stored
    manifests/<key>      each manifest object holding one of their lines, whole
    chain/<W>/<seq>.json the links from each of those objects' links up to the head
    chain/<W>/<seq>.tsr  the trusted timestamps of those links, where there are
    chain/<W>/head.json  the writer's head when the package was made
    tsa-ca.pem           the timestamp authority's certificate, when one is configured
    verify_package.py    the chain checker, Python's standard library only
    index.html           a page a person reads
    VERIFY.txt           the three checks: sha256sum, verify_package.py, openssl ts
    SHA256SUMS           every file's SHA-256

Each manifest object is proven against its chain (as ``get`` proves it) before
anything is written, and each recording is hashed as it is written: one that
is not its line's stops the package (an error, no complete ZIP).
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import zipfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from archiver.manifest.chain import Head, Link, sha256_hex
from archiver.manifest.entry import ManifestEntry
from archiver.manifest.reader import read_object
from archiver.retrieval.errors import IntegrityError, IntegrityKind
from archiver.retrieval.proof import ChainProver
from archiver.retrieval.zip_export import ZipSink, entry_info
from archiver.storage.base import ObjectStore
from archiver.storage.layout import head_key, link_key, stamp_key
from archiver.witness.checkpoint import Checkpoint

FORMAT = 1
MAX_LINKS = 20_000  # links one package may carry per writer (from its oldest call to the head)
VERIFIER = Path(__file__).parents[1] / "verify_package.py"  # a leaf: no import of ours
Send = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Chains:
    """What proves the manifests: per writer, its head and the links up to it."""

    heads: dict[str, bytes]
    links: dict[tuple[str, int], bytes]
    stamps: dict[tuple[str, int], bytes]


def _file_name(number: int, call: ManifestEntry) -> str:
    ext = PurePosixPath(call.object_key).suffix.lower()
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in call.sip_call_id)[:80]
    return f"recordings/{number:04d}-{safe}{ext if ext in ('.wav', '.mp3') else ''}"


async def collect_chains(store: ObjectStore, links: Sequence[Link]) -> Chains:
    """Each writer's head and its links from the oldest of ``links`` up to the head, with
    their timestamps; IntegrityError when the walk breaks or is longer than MAX_LINKS."""
    lowest: dict[str, int] = {}
    for link in links:
        lowest[link.writer] = min(lowest.get(link.writer, link.seq), link.seq)
    heads: dict[str, bytes] = {}
    found: dict[tuple[str, int], bytes] = {}
    stamps: dict[tuple[str, int], bytes] = {}
    for writer, low in sorted(lowest.items()):
        raw_head = await read_object(store, head_key(writer))
        heads[writer] = raw_head
        head = Head.from_bytes(raw_head)
        current: tuple[int, str] | None = (head.seq, head.link_sha256)
        while current is not None and current[0] >= low:
            seq, sha = current
            if len(found) >= MAX_LINKS * len(lowest):
                raise IntegrityError(
                    IntegrityKind.CUT,
                    f"the chain of writer {writer} from link {low} to its head is longer than "
                    f"{MAX_LINKS} links: make the package of newer calls, or of fewer",
                )
            try:
                raw = await read_object(store, link_key(writer, seq))
            except KeyError:
                raise IntegrityError(
                    IntegrityKind.CUT, f"chain link {link_key(writer, seq)} is missing"
                ) from None
            if sha256_hex(raw) != sha:
                raise IntegrityError(
                    IntegrityKind.CORRUPT, f"chain link {link_key(writer, seq)} was altered"
                )
            found[(writer, seq)] = raw
            try:
                stamps[(writer, seq)] = await read_object(store, stamp_key(writer, seq))
            except KeyError:
                pass  # not stamped: the chain still proves it, up to the head
            link = Link.from_bytes(raw)
            prev = link.prev_seq
            current = None if prev is None else (prev, link.prev_sha256 or "")
    return Chains(heads, found, stamps)


def covering(checkpoint: Checkpoint, chains: Chains) -> bool:
    """Whether the package's chains pass through ``checkpoint``: for each of its writers,
    the checkpoint names a link the package holds, with that link's SHA-256."""
    for writer in chains.heads:
        named = checkpoint.heads.get(writer)
        raw = None if named is None else chains.links.get((writer, named[0]))
        if named is None or raw is None or sha256_hex(raw) != named[1]:
            return False
    return True


def _verify_text(chains: Chains, has_ca: bool, witnessed: bool = False) -> str:
    lines = [
        "How to check this evidence package without the archiver",
        "",
        "1. Every file is the one listed (GNU coreutils):",
        "     sha256sum -c SHA256SUMS",
        "",
        "2. Every recording is the one its manifest line describes, every manifest",
        "   object the one its chain link records, and the links an unbroken hash",
        "   chain up to the writer's head (Python 3.8 or newer, standard library only):",
        "     python3 verify_package.py",
    ]
    if witnessed:
        lines += [
            "   It also checks that the chain passes through the witnessed checkpoint in",
            "   checkpoints/, and, with the `cryptography` package installed",
            "   (pip install cryptography), that the witness key in witness.vkey cosigned",
            "   it. Compare witness.vkey with the key the auditor keeps outside the archive.",
        ]
    lines += [
        "",
        "3. The trusted timestamps (RFC 3161) of the links, with OpenSSL:",
    ]
    if not chains.stamps:
        lines.append("     (none: this archive's links were not timestamped)")
    ca = "-CAfile tsa-ca.pem" if has_ca else "-CAfile <the timestamp authority's CA certificate>"
    for (writer, seq), _ in sorted(chains.stamps.items()):
        digest = sha256_hex(chains.links[(writer, seq)])
        lines.append(
            f"     openssl ts -verify -digest {digest} -in chain/{writer}/{seq:012d}.tsr {ca}"
        )
    lines += [
        "",
        "Each check prints OK (sha256sum: every line OK; openssl: 'Verification: OK').",
        "Any other answer means the package, or the archive it came from, was altered.",
        "",
    ]
    return "\n".join(lines)


_COLUMNS = ("file", "call_started_at", "from_number", "to_number", "sip_call_id", "sha256")


@functools.cache
def verifier_source() -> bytes:
    """The standalone checker's source, as it goes into every package."""
    return VERIFIER.read_bytes()


def _index_html(case: Mapping[str, Any], calls: list[dict[str, Any]]) -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(c.get(k, '')))}</td>"
            for k in (
                "file",
                "call_started_at",
                "from_number",
                "to_number",
                "sip_call_id",
                "sha256",
            )
        )
        + "</tr>"
        for c in calls
    )
    title = html.escape(f"Evidence package: {case.get('reference', '')}")
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body><h1>{title}</h1><p>Reason: {html.escape(str(case.get('reason', '')))}"
        f"</p><p>Made {html.escape(str(case.get('packaged_at', '')))} by "
        f"{html.escape(str(case.get('packaged_by', '')))}. VERIFY.txt says how to check it."
        "</p><table><thead><tr><th>file</th><th>started</th><th>from</th><th>to</th>"
        f"<th>sip_call_id</th><th>sha256</th></tr></thead><tbody>{rows}</tbody></table>"
        "</body></html>\n"
    )


@dataclass(frozen=True, slots=True)
class Proof:
    """The manifest objects of a package's calls, proven, and the chains up to their heads."""

    manifests: dict[str, bytes]
    chains: Chains


async def gather_proof(store: ObjectStore, calls: Sequence[ManifestEntry]) -> Proof:
    """Read and prove every manifest object ``calls`` come from, and collect their chains;
    IntegrityError when one is not proven (nothing is written before this succeeds)."""
    if not calls:
        raise ValueError("an evidence package needs at least one call")
    manifests: dict[str, bytes] = {}
    prover = ChainProver(store)
    links: list[Link] = []
    for call in calls:
        key = call.manifest_key or ""
        if key not in manifests:
            try:
                manifests[key] = await read_object(store, key)
            except KeyError:
                raise IntegrityError(
                    IntegrityKind.MISSING, f"manifest object {key} is missing"
                ) from None
            links.append(await prover.prove(key, manifests[key]))
    return Proof(manifests, await collect_chains(store, links))


async def write_package(
    store: ObjectStore,
    calls: Sequence[ManifestEntry],
    case: Mapping[str, Any],
    send: Send,
    *,
    tsa_ca: bytes | None = None,
    proof: Proof | None = None,
    extra: Mapping[str, bytes] | None = None,
) -> int:
    """Stream the evidence package of ``calls`` (each with its ``manifest_key``) to ``send``;
    the number of recordings. IntegrityError before the first byte when a manifest object
    is not proven (``proof`` gathered first, if not given), or while writing when a
    recording is not its line's."""
    proof = proof or await gather_proof(store, calls)
    manifests, chains = proof.manifests, proof.chains
    sink = ZipSink()
    sums: list[str] = []
    index: list[dict[str, Any]] = []
    with zipfile.ZipFile(cast(IO[bytes], sink), "w") as archive:

        async def small(name: str, data: bytes) -> None:
            archive.writestr(entry_info(name, len(data)), data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
            await send(sink.take())

        for number, call in enumerate(calls, 1):
            name = _file_name(number, call)
            digest = hashlib.sha256()
            with archive.open(entry_info(name, call.size), "w") as entry:
                async for chunk in store.read(store.relative_key(call.object_key)):
                    digest.update(chunk)
                    entry.write(chunk)
                    await send(sink.take())
            if digest.hexdigest() != call.sha256:
                raise IntegrityError(
                    IntegrityKind.CORRUPT,
                    f"{call.object_key} is not the recording its manifest line describes",
                )
            sums.append(f"{call.sha256}  {name}\n")
            fields = dict(call.fields)
            index.append(
                {
                    "file": name,
                    "provider": call.provider,
                    "cdr_id": call.cdr_id,
                    "sip_call_id": call.sip_call_id,
                    "sha256": call.sha256,
                    "manifest_key": call.manifest_key,
                    "call_started_at": fields.get("call_started_at"),
                    "from_number": fields.get("from_number"),
                    "to_number": fields.get("to_number"),
                }
            )
        for key, content in sorted(manifests.items()):
            await small(f"manifests/{key}", content)
        for (writer, seq), raw in sorted(chains.links.items()):
            await small(f"chain/{writer}/{seq:012d}.json", raw)
        for (writer, seq), raw in sorted(chains.stamps.items()):
            await small(f"chain/{writer}/{seq:012d}.tsr", raw)
        for writer, raw in sorted(chains.heads.items()):
            await small(f"chain/{writer}/head.json", raw)
        if tsa_ca is not None:
            await small("tsa-ca.pem", tsa_ca)
        for name, data in sorted((extra or {}).items()):
            await small(name, data)
        body = {"format": FORMAT, "calls": index}
        await small("calls.json", json.dumps(body, ensure_ascii=False, indent=1).encode())
        await small("case.json", json.dumps(dict(case), ensure_ascii=False, indent=1).encode())
        await small("verify_package.py", verifier_source())
        await small("index.html", _index_html(case, index).encode())
        witnessed = any(name.startswith("checkpoints/") for name in extra or {})
        await small("VERIFY.txt", _verify_text(chains, tsa_ca is not None, witnessed).encode())
        archive.writestr(entry_info("SHA256SUMS", 0), "".join(sums).encode())
    await send(sink.take())
    return len(calls)
