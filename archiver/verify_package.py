#!/usr/bin/env python3
"""Check an archiver evidence package with Python's standard library alone.

    python3 verify_package.py [PACKAGE_DIR]

This file travels inside every evidence package (as ``verify_package.py``) so
that a third party can check the package without the archiver. It checks:

1. every file is the one ``SHA256SUMS`` names (and no file is unlisted);
2. every recording is the one its call's manifest line describes (SHA-256, size);
3. every manifest object is the one its chain link records (SHA-256, size, key);
4. the links form an unbroken hash chain from each of those links up to the
   writer's head included in the package (each link's ``prev_sha256`` is the
   SHA-256 of the link before it).

5. where the package carries a witnessed checkpoint (``checkpoints/*.note``, a
   C2SP signed note of every writer's head, cosigned by an auditor's key kept
   outside the archive): the chain passes through it, and, with the
   ``cryptography`` package installed and the witness's verifier key
   (``witness.vkey``), its Ed25519 cosignature verifies.

The trusted timestamps (``chain/<writer>/<seq>.tsr``) are checked with OpenSSL,
as VERIFY.txt shows. Exit status 0: everything checked holds; 1: something does
not (each problem on its own line); 2: not an evidence package.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

FORMAT = 1


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def check_sums(root: Path, problems: list[str]) -> None:
    """Every file is listed in SHA256SUMS with its SHA-256, and nothing else is there."""
    listed: dict[str, str] = {}
    for number, line in enumerate((root / "SHA256SUMS").read_text("utf-8").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            problems.append(f"SHA256SUMS line {number} is not '<sha256>  <file>'")
            continue
        listed[name] = digest
    for name, digest in sorted(listed.items()):
        path = root / name
        if ".." in Path(name).parts or not path.is_file():
            problems.append(f"{name}: listed in SHA256SUMS but missing")
        elif _sha256(path) != digest:
            problems.append(f"{name}: its SHA-256 is not the one SHA256SUMS lists (altered)")
    for name in sorted(_files(root) - set(listed) - {"SHA256SUMS"}):
        problems.append(f"{name}: not listed in SHA256SUMS")


def _json(path: Path) -> dict[str, Any]:
    value = json.loads(path.read_bytes())
    if not isinstance(value, dict):
        raise ValueError(f"{path.name} is not a JSON object")
    return value


def _line_of(manifest: bytes, provider: str, cdr_id: str) -> dict[str, Any] | None:
    for raw in manifest.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and (line.get("provider"), line.get("cdr_id")) == (
            provider,
            cdr_id,
        ):
            return line
    return None


def check_calls(root: Path, calls: list[dict[str, Any]], problems: list[str]) -> set[str]:
    """Each recording against its line; the manifest objects named (returned)."""
    manifests: set[str] = set()
    for call in calls:
        name, key = str(call["file"]), str(call["manifest_key"])
        manifests.add(key)
        path, manifest_path = root / name, root / "manifests" / key
        if not manifest_path.is_file():
            problems.append(f"{name}: its manifest object {key} is not in the package")
            continue
        line = _line_of(manifest_path.read_bytes(), str(call["provider"]), str(call["cdr_id"]))
        if line is None:
            problems.append(f"{name}: no line of {key} names {call['provider']}:{call['cdr_id']}")
        elif not path.is_file():
            problems.append(f"{name}: the recording is missing")
        elif _sha256(path) != line.get("sha256") or path.stat().st_size != line.get("size"):
            problems.append(f"{name}: not the recording its manifest line describes (altered)")
    return manifests


def _note_parts(data: bytes) -> tuple[str, list[str]]:
    text, sep, signatures = data.decode("utf-8").rpartition("\n\n")
    if not sep:
        raise ValueError("not a signed note")
    return text + "\n", [s for s in signatures.split("\n") if s]


def _cosigned(text: str, signatures: list[str], vkey: str) -> bool | None:
    """Whether the witness key ``vkey`` cosigned ``text``; None without ``cryptography``."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        return None
    name, hexid, material = vkey.strip().split("+", 2)
    public = base64.b64decode(material)[1:]
    for line in signatures:
        _, signer, b64 = line.split(" ", 2)
        raw = base64.b64decode(b64)
        if signer != name or raw[:4] != bytes.fromhex(hexid) or len(raw) != 76:
            continue
        (stamp,) = struct.unpack(">Q", raw[4:12])
        message = f"cosignature/v1\ntime {stamp}\n{text}".encode()
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(raw[12:], message)
        except InvalidSignature:
            return False
        return True
    return False


def check_checkpoints(root: Path, problems: list[str], notes: list[str]) -> None:
    """Each witnessed checkpoint: its root, the chain through it, its cosignature."""
    vkey_path = root / "witness.vkey"
    vkey = vkey_path.read_text("ascii") if vkey_path.is_file() else None
    for path in sorted(root.glob("checkpoints/*.note")):
        name = path.relative_to(root).as_posix()
        try:
            text, signatures = _note_parts(path.read_bytes())
            lines = text.split("\n")[:-1]
            extension = "".join(f"{line}\n" for line in lines[3:])
            digest = hashlib.sha256(extension.encode()).digest()
            if base64.b64encode(digest).decode() != lines[2]:
                problems.append(f"{name}: its root is not the SHA-256 of its writer lines")
                continue
            heads = [line.split(" ") for line in lines[3:]]
        except (ValueError, IndexError, UnicodeDecodeError):
            problems.append(f"{name}: not a checkpoint note")
            continue
        for writer, seq, sha in heads:
            link = root / "chain" / writer / f"{int(seq):012d}.json"
            if link.is_file() and _sha256(link) != sha:
                problems.append(f"{name}: the chain of {writer} does not pass through it")
            elif link.is_file():
                notes.append(f"{name}: the chain of {writer} passes through link {int(seq)}")
        signed = None if vkey is None else _cosigned(text, signatures, vkey)
        if signed is False:
            problems.append(f"{name}: not cosigned by the key in witness.vkey")
        elif signed is None:
            notes.append(f"{name}: cosignature not checked (no witness.vkey, or no cryptography)")
        else:
            notes.append(f"{name}: cosigned by {vkey.split('+')[0] if vkey else ''}")


def check_chain(root: Path, manifests: set[str], problems: list[str]) -> int:
    """Each manifest object against its link, each link reached from its writer's head."""
    links: dict[tuple[str, int], tuple[dict[str, Any], str]] = {}
    for path in sorted((root / "chain").glob("*/*.json")):
        if path.name == "head.json":
            continue
        try:
            link = _json(path)
            links[(str(link["writer"]), int(link["seq"]))] = (link, _sha256(path))
        except (ValueError, KeyError, TypeError):
            problems.append(f"{path.relative_to(root).as_posix()}: not a chain link")
    needed: dict[str, set[int]] = {}
    for key in sorted(manifests):
        found = [(w, s) for (w, s), (link, _) in links.items() if link.get("manifest_key") == key]
        if not found:
            problems.append(f"manifests/{key}: no chain link in the package records it")
            continue
        writer, seq = found[0]
        link, _ = links[(writer, seq)]
        content = (root / "manifests" / key).read_bytes()
        if hashlib.sha256(content).hexdigest() != link.get("manifest_sha256"):
            problems.append(f"manifests/{key}: not the object its link {seq} records (altered)")
        elif len(content) != link.get("manifest_size"):
            problems.append(f"manifests/{key}: its size is not the one its link records")
        needed.setdefault(writer, set()).add(seq)
    walked = 0
    for writer, seqs in sorted(needed.items()):
        head_path = root / "chain" / writer / "head.json"
        if not head_path.is_file():
            problems.append(f"chain/{writer}: no head.json: the chain cannot be followed")
            continue
        head = _json(head_path)
        current: tuple[int, str] | None = (int(head["seq"]), str(head["link_sha256"]))
        reached: set[int] = set()
        while current is not None and not seqs <= reached:
            seq, sha = current
            entry = links.get((writer, seq))
            if entry is None:
                problems.append(f"chain/{writer}: link {seq} is missing: the chain is cut")
                break
            link, actual = entry
            if actual != sha:
                problems.append(f"chain/{writer}: link {seq} is not the one its successor records")
                break
            reached.add(seq)
            walked += 1
            prev = link.get("prev_seq")
            current = None if prev is None else (int(prev), str(link.get("prev_sha256")))
        for seq in sorted(seqs - reached):
            problems.append(f"chain/{writer}: link {seq} is not on the chain from the head")
    return walked


def main(argv: list[str]) -> int:
    """Check the package in argv[1] (default: this file's folder)."""
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    try:
        index = _json(root / "calls.json")
        calls = list(index["calls"]) if index.get("format") == FORMAT else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"not an archiver evidence package: {exc}", file=sys.stderr)
        return 2
    if calls is None:
        print("not an archiver evidence package: unknown format", file=sys.stderr)
        return 2
    problems: list[str] = []
    check_sums(root, problems)
    manifests = check_calls(root, calls, problems)
    walked = check_chain(root, manifests, problems)
    notes: list[str] = []
    check_checkpoints(root, problems, notes)
    for note in notes:
        print(note)
    for problem in problems:
        print(f"FAILED {problem}")
    if problems:
        print(f"{len(problems)} problem(s): the package is NOT proven intact")
        return 1
    print(
        f"OK: {len(calls)} recording(s) match their manifest lines, {len(manifests)} manifest "
        f"object(s) match their chain links, {walked} link(s) chained to the head"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
