"""The package's layering: a one-way graph of package levels, exit codes in one leaf.

Read from the source (``ast``): imports inside functions and under
``TYPE_CHECKING`` count, since they are arrows of the design even when they do
not run at import time. The levels are drawn in ``docs/architecture.md``; a
new package must be given one here, and a new arrow up fails a test.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

import archiver
from archiver.exits import ExitCode

PACKAGE = Path(archiver.__file__).parent

# Top to bottom. A package imports only packages of the levels below its own,
# never one of its own level. ``archiver`` (the root package) is the bottom.
LEVELS: list[frozenset[str]] = [
    frozenset({"__main__"}),
    frozenset({"cli"}),
    frozenset({"commands"}),
    frozenset({"service", "progress"}),
    frozenset({"pipeline", "console"}),
    frozenset({"retrieval", "state"}),
    frozenset({"privacy"}),
    frozenset({"manifest", "witness"}),
    frozenset({"timestamping"}),
    frozenset({"sources", "storage"}),
    frozenset({"http", "metrics", "lag", "setting_names", "exits", "index_db"}),
    frozenset({"settings", "logs"}),
    frozenset(
        {
            "errors",
            "models",
            "private_files",
            "waiting",
            "timeutil",
            "verify_package",
            "memory",
            "lone_surrogates",
        }
    ),
    frozenset({"failures", "archiver"}),
]
# Apart from the levels: only ``commands`` starts it, and it uses nothing of the
# product (a stand-in provider must not share the code it tests).
APART = {"simulator": frozenset({"commands"})}


def _level(package: str) -> int:
    return next(i for i, names in enumerate(LEVELS) if package in names)


def _package_of(module: str) -> str | None:
    """``archiver.pipeline.runner`` -> ``pipeline``; ``archiver.cli`` -> ``cli``."""
    parts = module.split(".")
    if parts[0] != "archiver":
        return None
    return parts[1] if len(parts) > 1 else "archiver"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(path: Path) -> list[tuple[str, int]]:
    """Every archiver module ``path`` imports (anywhere in it), with its line."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((m, node.lineno) for m in _from_import(node.module, node.names))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
    return [(m, line) for m, line in found if m == "archiver" or m.startswith("archiver.")]


@cache
def _all_modules() -> frozenset[str]:
    return frozenset(_module_name(p) for p in PACKAGE.rglob("*.py"))


def _from_import(module: str, names: list[ast.alias]) -> set[str]:
    """The modules ``from module import names`` reads: ``from archiver.console import
    views`` reads archiver.console.views (not the package's ``__init__``)."""
    submodules = {f"{module}.{a.name}" for a in names} & _all_modules()
    return submodules if len(submodules) == len(names) else {module, *submodules}


@cache
def _arrows() -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> where, for every pair of distinct packages."""
    arrows: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _package_of(_module_name(path))
        assert here is not None
        for module, line in _imported(path):
            there = _package_of(module)
            if there is not None and there != here:
                arrows[here, there].append(f"{path.relative_to(PACKAGE.parent)}:{line} {module}")
    return dict(arrows)


def _packages() -> list[str]:
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return sorted(names | {"archiver"})


def test_every_package_has_a_level() -> None:
    placed = set().union(*LEVELS) | set(APART)
    assert sorted(set(_packages()) - placed) == [], "give the new package a level"
    assert sorted(placed - set(_packages())) == [], "a level names a package that is gone"
    assert sum(len(names) for names in LEVELS) == len(set().union(*LEVELS)), "one level each"


@pytest.mark.parametrize("package", [p for p in _packages() if p not in APART])
def test_imports_only_go_down(package: str) -> None:
    """Every pair (``package``, another): an import is allowed only to a lower level."""
    mine = _level(package)
    up = {
        f"{package} -> {other}": where
        for (here, other), where in _arrows().items()
        if here == package and other not in APART and _level(other) <= mine
    }
    assert up == {}


@pytest.mark.parametrize("apart", sorted(APART))
def test_a_package_apart_is_used_only_by_its_users(apart: str) -> None:
    users = {here for (here, there) in _arrows() if there == apart}
    assert users <= APART[apart]
    assert {there for (here, there) in _arrows() if here == apart} == set()


def _runtime_imports(path: Path) -> set[str]:
    """The archiver modules ``path`` imports when it runs (``TYPE_CHECKING`` blocks left out)."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(_from_import(node.module, node.names))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_module_cycle_inside_a_package() -> None:
    """Inside a package too, no two modules import each other, even from inside a function."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {
        name: {m for m in _runtime_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    cycles = []
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycles.append(" -> ".join([*trail[trail.index(name) :], name]))
            return
        if name in done:
            return
        for nxt in sorted(graph[name]):
            if _package_of(nxt) == _package_of(name):
                visit(nxt, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert cycles == [], "\n".join(cycles)


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


def test_only_the_cli_and_the_commands_read_a_command_line() -> None:
    reading = sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "argparse" in _imports(path)
    )
    assert [p for p in reading if p != "cli.py" and not p.startswith("commands/")] == []


def test_the_architecture_page_draws_these_levels() -> None:
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = page.split("## Package levels", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
    drawn = [frozenset(re.findall(r"`(\w+)`", row[2])) for row in rows]
    assert drawn == [level for level in LEVELS if level != {"__main__"}]
