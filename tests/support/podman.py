"""The image built and run with podman, as docs/deployment.md tells users to.

No Docker daemon and no registry of images is reachable here, so:

- the base is a Debian root filesystem made with ``debootstrap`` from the
  machine's own Debian mirror and turned into an image by ``podman import``
  (made once, then reused while ``podman image exists`` finds it);
- ``docker/Dockerfile`` is built on it (``--build-arg BASE=...``);
- containers run with ``--runtime runc``, explicit ulimits and the host's
  network (the simulator, SeaweedFS and PostgreSQL of the tests are on loopback).

Each command is built by one function below; ``tests/container/test_docs.py``
renders them with the values the docs use and finds each in
docs/deployment.md, so the docs are what the tests run, flag for flag.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PODMAN = ("podman", "--runtime", "runc")
# podman as root on this kind of machine cannot raise the default rlimits: explicit ones.
ULIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
BASE_IMAGE = "localhost/archiver-base:bookworm"
BASE_SUITE = "bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The machine's CA bundle, handed to pip in the build: where the package index is
# reached through a TLS-inspecting proxy, that proxy's CA is in it (harmless elsewhere).
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
BUILD_CA = "/run/host-ca.pem"
STATE_DIR = "/var/lib/archiver"
# Above ARCHIVER_GRACE (20 s): podman kills (exit 137) what has not stopped by then.
STOP_TIMEOUT = 30
TOOLS = ("podman", "runc", "debootstrap")
_LOCK = Path(tempfile.gettempdir()) / "archiver-test-base.lock"


class PodmanMissingError(RuntimeError):
    """podman, runc or debootstrap is not installed."""


class BuildError(RuntimeError):
    """``podman build`` failed; the message names the step and podman's error."""


def require_tools() -> None:
    """Raise PodmanMissingError naming what to install (``.ci/run`` installs them)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise PodmanMissingError(
            f"{', '.join(missing)} not found: apt-get install -y podman runc debootstrap"
            " (.ci/run does it)"
        )


def debian_mirror(sources: Sequence[Path] | None = None) -> str:
    """The Debian mirror this machine's apt uses (its first ``debian`` URI), else deb.debian.org.

    Read from /etc/apt/sources.list and sources.list.d/ (one-line and deb822 forms).
    """
    if sources is None:
        etc = Path("/etc/apt")
        sources = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        uris = re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, flags=re.MULTILINE)
        uris += [
            u for line in re.findall(r"^URIs:(.*)$", text, flags=re.MULTILINE) for u in line.split()
        ]
        for uri in uris:
            if uri.startswith(("http://", "https://")) and uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


# -- the commands (docs/deployment.md shows each) ------------------------------------


def debootstrap_command(rootfs: str, mirror: str) -> list[str]:
    """A minimal Debian with Python 3 and venv in ``rootfs``."""
    return [
        "debootstrap",
        "--variant=minbase",
        f"--include={BASE_PACKAGES}",
        BASE_SUITE,
        rootfs,
        mirror,
    ]


def tar_command(rootfs: str) -> list[str]:
    """The root filesystem as a tar stream on stdout (piped into ``podman import``)."""
    return ["tar", "-C", rootfs, "-c", "."]


def import_command(image: str = BASE_IMAGE) -> list[str]:
    """``podman import`` of a tar stream on stdin as ``image``."""
    return ["podman", "import", "-", image]


def build_command(
    tag: str, dockerfile: str = "docker/Dockerfile", base: str = BASE_IMAGE
) -> list[str]:
    """Build ``dockerfile`` with the repository as the context (run from its root)."""
    return [
        *PODMAN,
        "build",
        "--format",
        "docker",
        *ULIMITS,
        "--network",
        "host",
        "--pull=never",
        "--build-arg",
        f"BASE={base}",
        "--build-arg",
        f"PIP_CERT={BUILD_CA}",
        "--volume",
        f"{HOST_CA}:{BUILD_CA}:ro",
        "--file",
        dockerfile,
        "--tag",
        tag,
        ".",
    ]


def run_command(
    name: str,
    image: str,
    *,
    env_file: str,
    volume: str | None,
    args: Sequence[str] = (),
    detach: bool = True,
    entrypoint: str | None = None,
) -> list[str]:
    """Run ``image`` as users will: its non-root user, a read-only root filesystem, the
    state on ``volume`` (None: the anonymous volume the image declares), a tmpfs /tmp."""
    mode = ["--detach", "--name", name] if detach else ["--rm", "--interactive"]
    mounts = ["--volume", f"{volume}:{STATE_DIR}"] if volume else []
    return [
        *PODMAN,
        "run",
        *mode,
        "--network",
        "host",
        *ULIMITS,
        "--read-only",
        "--read-only-tmpfs=false",
        "--tmpfs",
        "/tmp:rw,size=64m,mode=1777",
        *mounts,
        "--env-file",
        env_file,
        *(["--entrypoint", entrypoint] if entrypoint else []),
        image,
        *args,
    ]


def volume_create_command(name: str) -> list[str]:
    """A named volume (the state's, or the console's)."""
    return ["podman", "volume", "create", name]


def healthcheck_command(name: str) -> list[str]:
    """Run the image's HEALTHCHECK now (no systemd timer runs it here)."""
    return ["podman", "healthcheck", "run", name]


def stop_command(name: str) -> list[str]:
    """SIGTERM (the image's STOPSIGNAL), SIGKILL after STOP_TIMEOUT seconds."""
    return ["podman", "stop", "--time", str(STOP_TIMEOUT), name]


def wait_command(name: str) -> list[str]:
    """Prints the container's exit code once it has stopped."""
    return ["podman", "wait", name]


def start_command(name: str) -> list[str]:
    """Start a stopped container again: same settings, same volume."""
    return [*PODMAN, "start", name]


# -- the base and the build ------------------------------------------------------------


def image_exists(image: str) -> bool:
    """Whether podman's storage holds ``image``."""
    return subprocess.run(["podman", "image", "exists", image], check=False).returncode == 0


@contextmanager
def _machine_lock() -> Iterator[None]:
    """One maker of the base at a time on this machine (several checkouts may test)."""
    with _LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_base(image: str = BASE_IMAGE) -> str:
    """The Debian base image, made (about a minute) unless podman already has it."""
    with _machine_lock():
        if image_exists(image):
            return image
        with tempfile.TemporaryDirectory(prefix="archiver-rootfs-") as tmp:
            rootfs = str(Path(tmp) / "rootfs")
            made = subprocess.run(
                debootstrap_command(rootfs, debian_mirror()),
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            if made.returncode != 0:
                raise BuildError(f"debootstrap failed: {_tail(made.stdout + made.stderr)}")
            with subprocess.Popen(tar_command(rootfs), stdout=subprocess.PIPE) as tar:
                imported = subprocess.run(
                    import_command(image),
                    stdin=tar.stdout,
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=600,
                )
            if tar.returncode != 0 or imported.returncode != 0:
                raise BuildError(f"podman import failed: {_tail(imported.stderr)}")
    return image


def image_tag(name: str = "archiver") -> str:
    """A tag of this checkout's own (another checkout's build never replaces it)."""
    digest = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
    return f"localhost/{name}:test-{digest}"


def build(tag: str, dockerfile: str = "docker/Dockerfile", base: str = BASE_IMAGE) -> str:
    """Build ``dockerfile`` as ``tag`` from the repository root; BuildError if it fails."""
    done = subprocess.run(
        build_command(tag, dockerfile, base),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise BuildError(build_failure(dockerfile, done.returncode, done.stdout + done.stderr))
    return tag


def build_failure(dockerfile: str, code: int, output: str) -> str:
    """One clear message: which file, which step, and podman's own error line."""
    steps = re.findall(r"^\[?\S*\]? ?STEP \d+/\d+: .*$", output, flags=re.MULTILINE)
    errors = [line for line in output.splitlines() if line.startswith(("Error:", "error"))]
    step = steps[-1] if steps else "(before the first step)"
    error = errors[-1] if errors else _tail(output)
    return f"podman build of {dockerfile} failed (exit {code}) at {step}: {error}"


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# -- running containers ----------------------------------------------------------------


@dataclass
class Done:
    """A finished podman command."""

    code: int
    out: str
    err: str


async def podman(*argv: str, stdin: bytes | None = None, timeout: float = 120.0) -> Done:
    """Run a podman command (``argv`` starts with "podman") without blocking the event loop:
    the simulator the container talks to is served by this same loop."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=None if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(errors="replace"), _quiet(err.decode(errors="replace")))


def _quiet(err: str) -> str:
    # Without systemd, podman says on every run that it cannot set up the health
    # check's timer: noise here, where `podman healthcheck run` runs it on demand.
    return "\n".join(line for line in err.splitlines() if "systemd" not in line)


def write_env_file(path: Path, env: dict[str, str]) -> str:
    """An ``--env-file`` (it holds credentials: 0600)."""
    path.touch(mode=0o600)
    path.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return str(path)
