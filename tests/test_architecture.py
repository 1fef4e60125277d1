"""The layout of docs/architecture.md, kept true: recipes compose components and import no other
recipe (the pipelines call recipes' public entry points), components never import a recipe or a
command, no private name crosses a module, and no two modules import each other in a circle.
Read from the source with ``ast`` (every import, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "lvbert"
# Pipelines: their job is to run other recipes through their public entry points.
PIPELINES = {"lvbert.recipes.quickstart", "lvbert.recipes.compress"}
FRONT = ("lvbert.recipes", "lvbert.commands", "lvbert.cli", "lvbert.__main__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> list[tuple[str, str, str, int]]:
    """(importing module, imported module, imported name or "", line) for every lvbert import."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("lvbert"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    is_module = (PACKAGE.parent / Path(*target.split("."))).with_suffix(".py").is_file()
                    found.append((module, target if is_module else node.module, "" if is_module else alias.name,
                                  node.lineno))
            elif isinstance(node, ast.Import):
                found += [(module, a.name, "", node.lineno) for a in node.names if a.name.startswith("lvbert")]
    return found


def _is_recipe(module: str) -> bool:
    return module.startswith("lvbert.recipes.")


def test_no_recipe_imports_another_recipe():
    bad = [f"{m}:{line} imports {t}" + (f".{n}" if n else "") for m, t, n, line in _imports()
           if _is_recipe(m) and _is_recipe(t) and t != m and (m not in PIPELINES or n.startswith("_"))]
    assert not bad, "recipes import other recipes (move the helper down to a component):\n" + "\n".join(bad)


def test_no_component_imports_a_recipe_or_a_command():
    bad = [f"{m}:{line} imports {t}" for m, t, n, line in _imports()
           if not m.startswith(FRONT) and t.startswith(("lvbert.recipes", "lvbert.commands", "lvbert.cli"))]
    assert not bad, "components import the front end:\n" + "\n".join(bad)


def test_no_private_name_crosses_a_module():
    bad = [f"{m}:{line} imports {t}.{n}" for m, t, n, line in _imports()
           if n.startswith("_") and not n.startswith("__") and t != m]
    assert not bad, "private names imported across modules (make them public or move the code):\n" + "\n".join(bad)


def test_no_import_circle():
    graph: dict[str, set[str]] = {}
    for m, t, _, _ in _imports():
        if t != m and not m.startswith(t + ".") and not t.startswith(m + "."):  # a package and its own modules
            graph.setdefault(m, set()).add(t)
    circles = []

    def visit(node: str, stack: list[str], on_stack: set[str], done: set[str]) -> None:
        on_stack.add(node)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_stack:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, stack, on_stack, done)
        stack.pop()
        on_stack.discard(node)
        done.add(node)

    done: set[str] = set()
    for start in sorted(graph):
        if start not in done:
            visit(start, [], set(), done)
    assert not circles, "import circles:\n" + "\n".join(circles)
