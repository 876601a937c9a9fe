"""The package's layers hold: imports only go down, and no module imports itself through a cycle.

The layers are the import-linter contract in pyproject.toml (``[tool.importlinter]``, the map in
docs/architecture.md): ``certstatus.model`` and the other leaves at the bottom, the protocol and
the store above them, then access, signing, sources, the pipeline, and the commands and servers at
the top. Function-level imports count like module-level ones; imports under ``TYPE_CHECKING`` do
not (they never run).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

#: Modules that still import each other in a cycle, each cycle as a set, until it is broken. Nothing
#: may join them and no other cycle may appear.
KNOWN_CYCLES: list[set[str]] = []


def _lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_import_contract_is_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_a_wrong_way_import_breaks_the_contract(tmp_path: Path) -> None:
    """A copy of the package where the store imports the pipeline (upwards) is refused, naming the import."""
    shutil.copytree(ROOT / "src" / "certstatus", tmp_path / "src" / "certstatus", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    base = tmp_path / "src" / "certstatus" / "store" / "base.py"
    base.write_text(base.read_text() + "\nfrom certstatus.pipeline.status import decide  # noqa: E402,F401\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}

    result = _lint_imports(tmp_path, env)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "imports go down the layers BROKEN" in result.stdout
    assert "certstatus.store.base -> certstatus.pipeline.status" in result.stdout


def _cycles(graph: grimp.ImportGraph) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_module_imports_itself_through_a_cycle() -> None:
    graph = grimp.build_graph("certstatus", exclude_type_checking_imports=True, cache_dir=None)
    assert sorted(map(sorted, _cycles(graph))) == sorted(map(sorted, KNOWN_CYCLES))


def test_the_cycle_check_sees_a_cycle() -> None:
    graph = grimp.build_graph("certstatus", exclude_type_checking_imports=True, cache_dir=None)
    graph.add_import(importer="certstatus.model", imported="certstatus.store.base")  # store.base imports model
    assert {"certstatus.model", "certstatus.store.base"} in _cycles(graph)




def _function_imports_without_reason(path: Path) -> list[str]:
    """``file:line`` of each import inside a function with no "deferred" comment on it or on the comment
    line heading its run of imports."""
    lines = path.read_text().split("\n")
    found = []
    pending: list[ast.AST] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)) and in_function:
                pending.append(child)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse("\n".join(lines)), False)
    for statement in pending:
        own = "\n".join(lines[statement.lineno - 1 : statement.end_lineno])
        above = statement.lineno - 2
        heading = ""
        while above >= 0:
            text = lines[above].strip()
            if text.startswith(("import ", "from ")) or not text or text.startswith(")") or text.endswith((",", "(")):
                heading += text
                above -= 1
                continue
            heading += text if text.startswith("#") else ""
            break
        if "deferred" not in own and "deferred" not in heading:
            found.append(f"{path.name}:{statement.lineno}")
    return found


def test_a_function_level_import_says_what_it_defers() -> None:
    package = ROOT / "src" / "certstatus"
    unexplained = [
        where
        for path in sorted(package.rglob("*.py"))
        for where in _function_imports_without_reason(path)
    ]
    assert unexplained == []
