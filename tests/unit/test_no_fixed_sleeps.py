"""No test waits for another task or process by sleeping a fixed time.

A wait is on an event, a condition polled until a deadline (a sleep inside a
loop that checks something), or the injected clock (``tests/support/stepped.py``).
A sleep outside any loop is flagged, unless it yields (``sleep(0)``) or is
itself what is tested (listed below, each with why). The benchmarks
(``tests/bench``) measure time and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parents[1]

# (file, function): the sleep is the behaviour under test, not a wait for someone.
THE_THING_TESTED = {
    # A worker thread that gets to run late, as on a busy machine.
    ("integration/test_storage.py", "late_write"),
    # The fault proxy's cut: half a body reaches the storage, then the connection drops.
    ("support/s3faults.py", "body"),
    # The fault proxy's ``slow`` toxic: the delay is the fault it injects.
    ("support/faultproxy.py", "_slow"),
    # A fault scenario's outage: how long the fault lasts is the scenario's parameter.
    ("support/fault_run.py", "hold"),
}


def _sleeps_outside_loops(tree: ast.AST) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str, in_loop: bool) -> None:
        for child in ast.iter_child_nodes(node):
            name, loop = function, in_loop
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name, loop = child.name, False
            elif isinstance(child, ast.While | ast.For | ast.AsyncFor):
                loop = True
            elif isinstance(child, ast.Call) and not in_loop and _is_fixed_sleep(child):
                found.append((function, child.lineno))
            visit(child, name, loop)

    visit(tree, "<module>", False)
    return found


def _is_fixed_sleep(call: ast.Call) -> bool:
    func = call.func
    named = (isinstance(func, ast.Attribute) and func.attr == "sleep") or (
        isinstance(func, ast.Name) and func.id == "sleep"
    )
    if not named or not call.args:
        return False
    delay = call.args[0]
    return not (isinstance(delay, ast.Constant) and delay.value == 0)


def test_no_test_sleeps_a_fixed_time_to_wait() -> None:
    flagged = []
    for path in sorted(TESTS.rglob("*.py")):
        relative = path.relative_to(TESTS).as_posix()
        if relative.startswith("bench/"):
            continue
        for function, line in _sleeps_outside_loops(ast.parse(path.read_text())):
            if (relative, function) not in THE_THING_TESTED:
                flagged.append(f"tests/{relative}:{line} in {function}")
    assert flagged == []


def test_the_check_finds_a_fixed_sleep() -> None:
    source = (
        "async def t():\n"
        "    await asyncio.sleep(0.3)\n"
        "    while not done():\n"
        "        await asyncio.sleep(0.01)\n"
        "    await asyncio.sleep(0)\n"
    )
    assert _sleeps_outside_loops(ast.parse(source)) == [("t", 2)]
