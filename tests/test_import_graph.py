"""No import circle among the ``sec.*`` modules (issue 24, item 3).

Every ``import`` / ``from ... import`` statement of every module under ``sec/`` counts: module-level,
function-level and ``if TYPE_CHECKING:`` ones alike, relative ones resolved. ``from sec.pkg import
name`` is an edge to ``sec.pkg.name`` when that is a module, else to ``sec.pkg``; ``import
sec.a.b`` an edge to the longest prefix that is a module. Importing a module also runs its parent
packages' ``__init__``, which is not counted as an edge: a package ``__init__`` that imports its
submodules (to register them) is fine as long as no submodule imports the package back.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from conftest import ROOT


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file of every module under ``package_dir`` (``__init__`` as the package)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: Iterable[str]) -> set[str]:
    """The modules of ``modules`` that ``name`` (the module in ``path``) imports anywhere in its body."""
    modules = set(modules)
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def longest_module(dotted: str) -> str | None:
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in modules:
                return ".".join(parts[:i])
        return None

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = longest_module(alias.name)
                if target:
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                base_parts = package[: len(package) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    out.add(f"{base}.{alias.name}")
                else:
                    target = longest_module(base)
                    if target:
                        out.add(target)
    out.discard(name)
    return out


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    modules = module_names(package_dir)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path = [root]
        stack = [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_walker_sees_function_level_relative_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg import a\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..sub.c import X\nimport pkg.sub.c\n"
    )
    (pkg / "sub" / "c.py").write_text("from pkg.sub import d\n")
    (pkg / "sub" / "d.py").write_text("from pkg import sub\n")
    graph = import_graph(pkg)
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.sub.c"},
        "pkg.sub.c": {"pkg.sub.d"},
        "pkg.sub.d": {"pkg.sub"},
    }
    assert find_cycle(graph) is None
    (pkg / "sub" / "__init__.py").write_text("def load():\n    from . import b\n")
    assert find_cycle(import_graph(pkg)) == ["pkg.sub.b", "pkg.sub.c", "pkg.sub.d", "pkg.sub", "pkg.sub.b"]


def test_no_import_cycle_among_sec_modules():
    graph = import_graph(ROOT / "sec")
    assert "sec.tasks.generation" in graph and "sec.tasks.timed_items" in graph["sec.tasks.generation"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
