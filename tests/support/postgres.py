"""A throwaway PostgreSQL cluster on loopback, for the Postgres state-store tests.

Debian's ``postgresql`` package gives the binaries (``.ci/run`` installs it); the
cluster it may start is not used: :class:`PostgresCluster` runs its own with
``initdb`` + ``pg_ctl`` in a temporary directory, on a free port of 127.0.0.1,
with its unix socket in that directory. ``initdb`` refuses to run as root, so as
root the server runs as the ``postgres`` user, in a directory that user owns.

Authentication: the superuser ``postgres`` is trusted on loopback (the fixtures'
admin DSN has no password); every other role must give its password
(scram-sha-256), so the tests of a wrong password meet a real refusal.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.seaweed import free_ports

SUPERUSER = "postgres"
# The role with a password (the wrong-password tests): scram-sha-256 on loopback.
PASSWORD_ROLE = "archiver_pw"
PASSWORD = "s3cret-Pa55word"  # noqa: S105 (a throwaway test cluster's role)

_HBA = f"""\
# Written by tests/support/postgres.py: loopback and the unix socket only.
local all all trust
host all {SUPERUSER} 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""

# A test cluster: durability is not the point, start-up and speed are. Each
# replica test and each store pool holds connections, hence more than 100.
_SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1",
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    "-c max_connections=300",
    "-c shared_buffers=32MB",
)


class PostgresMissingError(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def find_bindir() -> Path:
    """The directory of ``initdb``, ``pg_ctl`` and ``psql`` (Debian keeps them off PATH)."""
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(  # noqa: S603 (a fixed argument list)
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(result.stdout.strip())
    # Newest major version first.
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for candidate in candidates:
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise PostgresMissingError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql"
        " (.ci/run does it)"
    )


@dataclass(frozen=True)
class PostgresServer:
    """Where the cluster listens, and how to reach it as its superuser."""

    host: str
    port: int
    socket_dir: Path
    bindir: Path

    @property
    def admin_dsn(self) -> str:
        """The superuser's DSN on the ``postgres`` database (trusted, no password)."""
        return self.dsn("postgres")

    def dsn(self, database: str, user: str = SUPERUSER, password: str | None = None) -> str:
        """A ``postgresql://`` URL of ``database`` on this cluster."""
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def psql(self, *sql: str, database: str = "postgres") -> str:
        """Run each of ``sql`` (a statement or a meta-command such as ``\\c``) as the
        superuser over the unix socket, in one psql; its output, or RuntimeError."""
        result = subprocess.run(  # noqa: S603 (our own argument list)
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                *(arg for statement in sql for arg in ("-c", statement)),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {result.stderr.strip()}")
        return result.stdout.strip()

    def create_database(self, name: str, template: str = "template0", *then: str) -> str:
        """``CREATE DATABASE name TEMPLATE template``, then run ``then`` in it; its DSN.

        FILE_COPY: for the small databases of tests it is faster than the default
        (WAL_LOG, which writes every block through the WAL).
        """
        self.psql(
            f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY',
            *((f'\\c "{name}"', *then) if then else ()),
        )
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any session still on it (a killed replica's)."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PostgresCluster:
    """One ``initdb``'d cluster under a fresh temporary directory, started by ``pg_ctl``."""

    def __init__(self, *, durable: bool = False) -> None:
        """``durable``: every acknowledged commit survives a crash of the server (its
        WAL written before the answer, ``synchronous_commit=on``). The fast default
        loses the last commits at ``pg_ctl stop -m immediate``, which a production
        server (``synchronous_commit`` on by default) never does: a test that crashes
        the server under the archiver needs a durable cluster."""
        self.bindir = find_bindir()
        self._server_options = tuple(
            "-c synchronous_commit=on" if durable and o.startswith("-c synchronous_commit") else o
            for o in _SERVER_OPTIONS
        )
        # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, which the postgres
        # user could not enter.
        self.workdir = Path(tempfile.mkdtemp(prefix="archiver-pg-"))
        self.datadir = self.workdir / "data"
        self.log_path = self.workdir / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SUPERUSER)
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", SUPERUSER, "--"]
        self._server: PostgresServer | None = None
        self._options = ""  # the server options of the first start, for a restart

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(  # noqa: S603 (our own argument list)
            [*self._as_user, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} exited with {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}\n{self._log()}"
            )

    def start(self, attempts: int = 3) -> PostgresServer:
        """initdb, then start on a free port (again on a new one if it was taken meanwhile)."""
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        (self.datadir / "pg_hba.conf").write_text(_HBA)
        for attempt in range(1, attempts + 1):
            (port,) = free_ports(1)
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    " ".join((*self._server_options, f"-p {port}", f"-k {self.workdir}")),
                    "start",
                )
            except RuntimeError:
                if attempt == attempts:
                    raise
                time.sleep(0.2)
                continue
            self._options = " ".join((*self._server_options, f"-p {port}", f"-k {self.workdir}"))
            self._server = PostgresServer("127.0.0.1", port, self.workdir, self.bindir)
            self._server.psql(f"CREATE ROLE {PASSWORD_ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
            return self._server
        raise AssertionError("unreachable")

    def pg_ctl(self, action: str, mode: str = "fast") -> None:
        """``pg_ctl stop`` or ``restart`` with shutdown ``mode`` (``fast``: sessions are
        ended, ``immediate``: the server is killed and recovers at its next start),
        or ``start`` again on the same port, waiting for the server each time."""
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", "-t", "60"]
        if action in ("stop", "restart"):
            command += ["-m", mode]
        if action in ("start", "restart"):
            command += ["-l", str(self.log_path), "-o", self._options]
        self._run(*command, action)

    def _log(self, tail: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join(lines[-tail:])

    def stop(self) -> None:
        """Stop the server (fast: sessions are ended) and remove its directory."""
        try:
            if self._server is not None:
                self._server = None
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._run(
                        str(self.bindir / "pg_ctl"),
                        "-D",
                        str(self.datadir),
                        "-m",
                        "fast",
                        "-w",
                        "stop",
                        timeout=60,
                    )
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
