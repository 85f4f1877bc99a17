"""The package's layering: exit codes in one leaf, commands never import the CLI.

Read from the source (``ast``), so a cycle is caught even when a lazy import
inside a function would hide it at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import archiver
from archiver.exits import ExitCode

PACKAGE = Path(archiver.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("commands"), ids=lambda p: p.name)
def test_commands_never_import_the_composition_root(path: Path) -> None:
    assert "archiver.cli" not in _imports(path)


def test_the_exit_codes_module_is_a_leaf() -> None:
    inside = {m for m in _imports(PACKAGE / "exits.py") if m.startswith("archiver")}
    assert inside <= {"archiver.logs"}


def test_exit_codes_are_defined_once() -> None:
    """No module but ``exits`` binds a name to an exit code of its own."""
    for path in PACKAGE.rglob("*.py"):
        if path.name == "exits.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                assert not [n for n in names if n.startswith("EXIT_")], (path, names)
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 130]


def test_one_fail_and_retrieval_never_prints() -> None:
    defining = [
        path
        for path in PACKAGE.rglob("*.py")
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name in ("fail", "_fail")
    ]
    assert defining == [PACKAGE / "exits.py"]
    for path in _modules("retrieval"):
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
        ]
        assert calls == [], path
