"""Which event loop each command runs on (ARCHIVER_EVENT_LOOP): pure logic, no loop run."""

from __future__ import annotations

import sys

import pytest
import uvloop

from archiver.cli import build_parser, loop_factory
from archiver.errors import ConfigError
from archiver.settings import Settings, load_settings


def args_of(*argv: str) -> object:
    return build_parser(list(argv)).parse_args(list(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ("backfill", "--since", "2021-02-17", "--until", "2021-02-18"),
        ("run",),
    ],
)
def test_run_and_backfill_run_on_uvloop_by_default(argv: tuple[str, ...]) -> None:
    factory = loop_factory(args_of(*argv), Settings())  # type: ignore[arg-type]
    assert factory is uvloop.new_event_loop
    assert loop_factory(args_of(*argv), Settings(event_loop="uvloop")) is uvloop.new_event_loop  # type: ignore[arg-type]


def test_asyncio_turns_it_off() -> None:
    args = args_of("backfill", "--since", "2021-02-17", "--until", "2021-02-18")
    assert loop_factory(args, Settings(event_loop="asyncio")) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("argv", [("verify",), ("status",), ("console",)])
def test_every_other_command_stays_on_asyncio(argv: tuple[str, ...]) -> None:
    assert loop_factory(args_of(*argv), Settings(event_loop="uvloop")) is None  # type: ignore[arg-type]


def test_without_uvloop_auto_falls_back_and_uvloop_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop: ImportError
    args = args_of("run")
    assert loop_factory(args, Settings()) is None  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ARCHIVER_EVENT_LOOP=uvloop.*not installed"):
        loop_factory(args, Settings(event_loop="uvloop"))  # type: ignore[arg-type]


def test_a_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_EVENT_LOOP", "trio")
    with pytest.raises(ConfigError, match="ARCHIVER_EVENT_LOOP"):
        load_settings()
