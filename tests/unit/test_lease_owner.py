"""Which lease holders are certainly gone: a process of this host that no longer runs."""

from __future__ import annotations

import os
import subprocess
import sys

from archiver.pipeline.owner_tokens import holder_is_gone, mark_live
from archiver.pipeline.owner_tokens import owner_token as lease_owner

HERE = lease_owner("x").partition("@")[2]  # this host, as a token spells it


def test_a_run_of_this_very_process_is_gone() -> None:
    # A restarted container: same host name, often the same pid, another run.
    assert holder_is_gone(lease_owner("oldrun"))


def test_a_run_going_on_in_this_process_is_not_gone_until_it_ends() -> None:
    # Two pipelines of one process (replicas in a test): neither takes the other's work.
    owner = lease_owner("liverun")
    mark_live(owner, True)
    try:
        assert not holder_is_gone(owner)
    finally:
        mark_live(owner, False)
    assert holder_is_gone(owner)


def test_a_live_process_of_this_host_is_not_gone() -> None:
    assert not holder_is_gone(f"run-{os.getppid()}@{HERE}")


def test_an_ended_process_of_this_host_is_gone() -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert holder_is_gone(f"run-{int(child.stdout)}@{HERE}")


def test_another_host_or_a_strange_owner_is_waited_for() -> None:
    assert not holder_is_gone(f"run-1@not-{HERE}")
    assert not holder_is_gone("proc-a")
    assert not holder_is_gone("")
