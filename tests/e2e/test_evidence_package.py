"""A case's evidence package, end to end, checked as a third party would check it.

``archiver backfill`` with trusted timestamps (a local TSA), ``archiver case open``,
``add`` and ``export`` as subprocesses; then the package is unpacked and checked by
its own VERIFY.txt: ``sha256sum -c``, ``verify_package.py`` run by a fresh virtual
environment's Python with no archiver in it, and ``openssl ts -verify`` on every
token. One altered byte (a recording, a manifest object, a chain link) fails it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shlex
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archiver.simulator import SimConfig, Simulator
from tests.support.cli import archiver_env, local_storage_env, run_cli, s3_storage_env
from tests.support.tsa import Pki, make_pki, serve_tsa

pytestmark = pytest.mark.timeout(400)
TUNING = {
    "ARCHIVER_SOURCE__RATE_LIMIT": "0",
    "ARCHIVER_CONCURRENCY": "4",
    "ARCHIVER_MANIFEST_INTERVAL": "0.2",
    "ARCHIVER_MANIFEST_BATCH": "3",  # several manifest objects, so several links
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(
        SimConfig(seed=33, calls=9, recording_fraction=1.0, min_size=10_000, max_size=30_000)
    )
    async with simulator.serve():
        yield simulator


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment's Python: no archiver, nothing installed."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    probe = subprocess.run(
        [python, "-c", "import archiver"], capture_output=True, check=False, cwd=venv
    )
    assert probe.returncode != 0  # the check must not lean on the archiver
    return python


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


def check_package(folder: Path, python: Path) -> list[str]:
    """Run VERIFY.txt's commands; the failures (empty: every check passed)."""
    failures = []
    sums = _run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], folder)
    if sums.returncode != 0:
        failures.append(f"sha256sum: {sums.stdout}{sums.stderr}")
    checker = _run([str(python), "verify_package.py"], folder)
    if checker.returncode != 0:
        failures.append(f"verify_package.py: {checker.stdout}{checker.stderr}")
    for line in (folder / "VERIFY.txt").read_text().splitlines():
        if line.strip().startswith("openssl ts -verify"):
            token = _run(shlex.split(line.strip()), folder)
            if token.returncode != 0 or "Verification: OK" not in token.stdout:
                failures.append(f"{line.strip()}: {token.stdout}{token.stderr}")
    return failures


@pytest.fixture(params=["local", "s3"])
async def storage(request, tmp_path, make_bucket, s3_settings, seaweed) -> dict[str, str]:
    if request.param == "local":
        return local_storage_env(tmp_path / "archive")
    return s3_storage_env(s3_settings(await make_bucket()), seaweed)


async def test_a_case_exports_a_package_a_third_party_checks_without_the_archiver(
    tmp_path, sim, storage, bare_python
):
    pki: Pki = make_pki(tmp_path / "pki")
    async with serve_tsa(pki) as (_, url):
        env = archiver_env(
            tmp_path,
            sim=sim,
            storage=storage,
            tuning=TUNING,
            ARCHIVER_TIMESTAMP__URL=url,
            ARCHIVER_TIMESTAMP__CA_BUNDLE=str(pki.ca_cert),
        )
        run = await run_cli(
            "backfill", "--since", "2021-02-17", "--until", "2021-02-18", env=env, cwd=tmp_path
        )
        assert run.code == 0, run.err
    calls = [c for c in sim.calls if c.has_recording]
    opened = await run_cli(
        "case",
        "open",
        "--reference",
        "KN-2026-118",
        "--reason",
        "customer complaint",
        env=env,
        cwd=tmp_path,
    )
    assert opened.code == 0, opened.err
    case_id = opened.out.strip()
    wanted = [calls[0].sip_call_id, calls[-1].sip_call_id, calls[4].cdr_id]
    added = await run_cli("case", "add", case_id, *wanted, env=env, cwd=tmp_path)
    assert added.code == 0, added.err
    assert "3 call(s) added" in added.out
    package = tmp_path / "kn.zip"
    exported = await run_cli("case", "export", case_id, "-o", str(package), env=env, cwd=tmp_path)
    assert exported.code == 0, exported.err
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(package).extractall(folder)
    assert sorted(p.name for p in folder.glob("recordings/*"))[0].startswith("0001-")
    assert len(list(folder.glob("recordings/*"))) == 3
    assert list(folder.glob("chain/*/*.tsr"))  # the links' timestamps travel too
    case = json.loads((folder / "case.json").read_text())
    assert case["reference"] == "KN-2026-118"
    assert await asyncio.to_thread(check_package, folder, bare_python) == []

    # One altered byte anywhere fails the check: a recording...
    recording = sorted(folder.glob("recordings/*"))[1]
    _flip(recording)
    failures = await asyncio.to_thread(check_package, folder, bare_python)
    assert any("sha256sum" in f for f in failures)
    assert any("verify_package.py" in f and recording.name in f for f in failures)
    _flip(recording)
    # ...a manifest object, even with SHA256SUMS made to agree...
    manifest = next(folder.glob("manifests/**/*.jsonl"))
    _flip(manifest, at=-3)
    _resum(folder)
    failures = await asyncio.to_thread(check_package, folder, bare_python)
    assert any("not the object its link" in f for f in failures), failures
    _flip(manifest, at=-3)
    # ...or a chain link (its timestamp no longer matches either).
    link = sorted(folder.glob("chain/*/0*.json"))[0]
    _flip(link, at=-3)
    _resum(folder)
    failures = await asyncio.to_thread(check_package, folder, bare_python)
    assert any("verify_package.py" in f for f in failures), failures
    _flip(link, at=-3)
    _resum(folder)
    assert await asyncio.to_thread(check_package, folder, bare_python) == []

    listed = await run_cli("case", "list", "--format", "json", env=env, cwd=tmp_path)
    assert [c["case"] for c in json.loads(listed.out)] == [case_id]
    audit = await run_cli("audit", "--format", "json", env=env, cwd=tmp_path)
    actions = [r["action"] for r in json.loads(audit.out)]
    assert {"case-open", "case-add", "case-export"} <= set(actions)


async def test_bad_case_commands_say_so_in_one_line(tmp_path, sim):
    env = archiver_env(
        tmp_path, sim=sim, storage=local_storage_env(tmp_path / "archive"), tuning=TUNING
    )
    run = await run_cli(
        "backfill", "--since", "2021-02-17", "--until", "2021-02-18", env=env, cwd=tmp_path
    )
    assert run.code == 0, run.err
    for args, code, text in (
        (["open", "--reference", "KN-1"], 2, "--reason"),
        (["open", "--reference", "KN-1", "--reason", "..."], 2, "reason"),
        (["show", "C-20260101-00000000"], 4, "no such case"),
        (["show", "../../etc"], 4, "no such case"),
        (["export", "C-20260101-00000000", "-o", "x.zip"], 4, "no such case"),
    ):
        result = await run_cli("case", *args, env=env, cwd=tmp_path)
        assert result.code == code, (args, result.err)
        assert text in result.err
        assert len(result.err.strip().splitlines()) == 1, result.err
    opened = await run_cli(
        "case", "open", "--reference", "KN-2", "--reason", "inspection", env=env, cwd=tmp_path
    )
    case_id = opened.out.strip()
    empty = await run_cli("case", "export", case_id, "-o", "x.zip", env=env, cwd=tmp_path)
    assert empty.code == 2
    assert "holds no call" in empty.err
    unknown = await run_cli("case", "add", case_id, "no-such-call", env=env, cwd=tmp_path)
    assert unknown.code == 4
    assert not (tmp_path / "x.zip").exists()


def _flip(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _resum(folder: Path) -> None:
    """SHA256SUMS rewritten to agree with the files (what a forger would do)."""
    lines = []
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        _, name = line.split("  ", 1)
        lines.append(f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}\n")
    (folder / "SHA256SUMS").write_text("".join(lines))


async def test_a_package_carries_the_witnessed_checkpoint_its_chain_passes_through(
    tmp_path, sim, bare_python
):
    env = archiver_env(
        tmp_path, sim=sim, storage=local_storage_env(tmp_path / "archive"), tuning=TUNING
    )
    key, place = tmp_path / "audit" / "witness.key", tmp_path / "audit" / "checkpoints"
    key.parent.mkdir()
    made = await run_cli(
        "witness",
        "keygen",
        "--name",
        "audit.example/calls",
        "--out",
        str(key),
        env=env,
        cwd=tmp_path,
    )
    assert made.code == 0, made.err
    run = await run_cli(
        "backfill", "--since", "2021-02-17", "--until", "2021-02-18", env=env, cwd=tmp_path
    )
    assert run.code == 0, run.err
    for args in (
        ["register", "--key", str(key)],
        ["checkpoint", "--key", str(key), "--to", str(place)],
    ):
        done = await run_cli("witness", *args, env=env, cwd=tmp_path)
        assert done.code == 0, done.err
    opened = await run_cli(
        "case", "open", "--reference", "INSP-9", "--reason", "inspection", env=env, cwd=tmp_path
    )
    case_id = opened.out.strip()
    first = next(c for c in sim.calls if c.has_recording)
    assert (await run_cli("case", "add", case_id, first.cdr_id, env=env, cwd=tmp_path)).code == 0
    package = tmp_path / "inspection.zip"
    exported = await run_cli(
        "case",
        "export",
        case_id,
        "-o",
        str(package),
        "--witness",
        str(place),
        "--witness-key",
        f"{key}.pub",
        env=env,
        cwd=tmp_path,
    )
    assert exported.code == 0, exported.err
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(package).extractall(folder)
    assert list(folder.glob("checkpoints/*.note"))
    assert (folder / "witness.vkey").read_text().startswith("audit.example/calls+")
    assert await asyncio.to_thread(check_package, folder, bare_python) == []
    # With cryptography (this test's own Python has it), the cosignature is checked too.
    checked = _run([sys.executable, "-I", "verify_package.py"], folder)
    assert checked.returncode == 0, checked.stdout
    assert "cosigned by audit.example/calls" in checked.stdout
    assert "passes through link" in checked.stdout
    # A checkpoint edited to name another link, its root made to agree, fails.
    note = next(folder.glob("checkpoints/*.note"))
    text, _, signatures = note.read_text().rpartition("\n\n")
    lines = text.split("\n")
    writer, seq, _ = lines[3].split(" ")
    lines[3] = f"{writer} {seq} {'0' * 64}"
    extension = "".join(f"{line}\n" for line in lines[3:])
    lines[2] = base64.b64encode(hashlib.sha256(extension.encode()).digest()).decode()
    note.write_text("\n".join(lines) + "\n\n" + signatures)
    _resum(folder)
    failures = await asyncio.to_thread(check_package, folder, bare_python)
    assert any("does not pass through it" in f for f in failures), failures
    forged = _run([sys.executable, "-I", "verify_package.py"], folder)
    assert "not cosigned by the key in witness.vkey" in forged.stdout
