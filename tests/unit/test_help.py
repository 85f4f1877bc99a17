"""Every command explains itself: a paragraph, examples, its exit codes, a line per option."""

from __future__ import annotations

import argparse

import pytest

from archiver.cli import build_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_has_a_paragraph_an_example_and_its_exit_codes(name: str) -> None:
    text = _commands()[name].format_help()
    usage, _, rest = text.partition("\n\n")
    paragraph = rest.split("\n\n")[0]
    assert len(paragraph.split()) >= 8, f"{name}: no description paragraph\n{text}"
    assert "\nexamples:\n" in text
    assert f"  archiver {name}" in text.split("examples:")[1]
    codes = text.split("exit codes:")[1]
    assert "  0 " in codes
    assert "  2 " in codes


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_has_a_help_line(name: str) -> None:
    for action in _commands()[name]._actions:
        assert action.help, f"{name}: {action.dest} has no help line"


def test_the_exit_codes_of_the_contract_are_shown_where_they_apply() -> None:
    commands = _commands()
    assert "  3    finished, but some recordings failed" in commands["backfill"].format_help()
    assert "  4    no archived call has this id" in commands["get"].format_help()
    assert "  5    " in commands["verify"].format_help()
    assert "the port is in use" in commands["simulate"].format_help()
