"""The house by layer (docs/ARCHITECTURE.md): imports only go down the rooms of lib/, no
import circle, and an import inside a function says why it is there."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from lib.core.paths import ROOT

#: the rooms of lib/, bottom to top (docs/ARCHITECTURE.md, "The house by layer")
ROOMS = ("core", "method", "data", "training", "analysis", "plots", "pipeline", "cli",
         "__main__")
LIB = ROOT / "lib"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "lib" else None


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def lib_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported lib module, inside a function) for every import of ``lib`` in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}")
                     else node.module for a in node.names]
        else:
            continue
        out += [(node.lineno, n, id(node) not in top) for n in names
                if n.split(".")[0] == "lib" and n != "lib"]
    return out


def import_problems(root: Path = LIB) -> list[str]:
    """Every import that climbs to a higher room, and every in-function import of ``lib``
    without a ``lazy import`` comment."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        me = _room(_module(path))
        lines = path.read_text(encoding="utf-8").splitlines()
        for line, name, inside in lib_imports(path):
            target = _room(name)
            where = f"{path.relative_to(ROOT)}:{line}"
            if me not in ROOMS or target not in ROOMS:
                problems.append(f"{where}: {name} is in no room of {ROOMS}")
            elif ROOMS.index(target) > ROOMS.index(me):
                problems.append(f"{where}: {me} imports {name}, a room above it")
            if inside and "lazy import" not in " ".join(lines[max(0, line - 2):line + 1]):
                problems.append(f"{where}: {name} imported inside a function without a "
                                "'# lazy import (...)' comment")
    return problems


def import_cycles(root: Path = LIB) -> list[list[str]]:
    """Circles of module-level imports between the modules of ``lib``."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        graph[_module(path)] = {n for _, n, inside in lib_imports(path) if not inside}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_imports_only_go_down_and_lazy_ones_say_why():
    assert import_problems() == []


def test_no_import_circle():
    assert import_cycles() == []


@pytest.fixture
def fake_lib(tmp_path, monkeypatch):
    """A scratch lib/ laid out like the real one, for the checks' own tests."""
    root = tmp_path / "repo"
    for room in ("core", "method", "training"):
        (root / "lib" / room).mkdir(parents=True)
        (root / "lib" / room / "__init__.py").write_text("")
    (root / "lib" / "__init__.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", root)
    return root / "lib"


def test_the_checks_see_an_upward_import_an_unexplained_lazy_one_and_a_circle(fake_lib):
    (fake_lib / "core" / "paths.py").write_text("from lib.method import graph\n")
    (fake_lib / "method" / "graph.py").write_text(
        "def f():\n    from lib.training import trainer\n\n\n"
        "def g():\n    from lib.core import paths  # lazy import (torch)\n")
    (fake_lib / "training" / "trainer.py").write_text("from lib.training import runs\n")
    (fake_lib / "training" / "runs.py").write_text("from lib.training import trainer\n")
    problems = import_problems(fake_lib)
    assert any("core imports lib.method.graph, a room above it" in p for p in problems)
    assert any("method imports lib.training.trainer" in p for p in problems)
    assert any("lib.training.trainer imported inside a function without" in p
               for p in problems)
    assert not any("lib.core.paths imported inside" in p for p in problems)
    assert ["lib.training.runs", "lib.training.trainer", "lib.training.runs"] in \
        import_cycles(fake_lib)
