"""A command imports only what it needs: ``archiver get`` does not pay for the console's
web application, Argon2, Jinja2 or rich at start-up (issue 14: get under 2 s warm)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from archiver.cli import build_parser
from archiver.commands import MODULES


def _names(parser: argparse.ArgumentParser) -> set[str]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_every_command_is_mapped_to_its_module() -> None:
    assert _names(build_parser()) == set(MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_command_line_registers_its_command_and_its_modules_siblings_only(name: str) -> None:
    siblings = {other for other, module in MODULES.items() if module == MODULES[name]}
    assert _names(build_parser([name, "--help"])) == siblings


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h", "get"], ["nosuch"]])
def test_no_command_named_first_registers_them_all(argv: list[str]) -> None:
    assert _names(build_parser(argv)) == set(MODULES)


def _imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_parsing_a_get_command_line_imports_no_web_framework_nor_s3_client() -> None:
    code = "from archiver.cli import build_parser\nbuild_parser(['get', 'X', '--url'])"
    imported = _imported_after(code)
    heavy = {"argon2", "jinja2", "aiohttp", "aiohttp.web", "aiobotocore", "botocore", "rich"}
    assert imported & heavy == set()
    assert "archiver.commands.get" in imported


def test_importing_the_accounts_module_hashes_no_password() -> None:
    # An Argon2 hash (64 MiB, most of a second under load) once made at import time.
    code = (
        "import argon2\n"
        "def refuse(*a, **k): raise SystemExit('hashed at import')\n"
        "argon2.PasswordHasher.hash = refuse\n"
        "import archiver.console.auth"
    )
    assert "archiver.console.auth" in _imported_after(code)
