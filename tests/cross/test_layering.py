"""The package's layering (``diffpose/__init__.py``): imports point down, never in a circle, never hidden.

Every ``import`` of the package's own modules is read from the source (module level and inside functions)
and checked against the layer table below, which is the one ``diffpose/__init__.py`` documents.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import diffpose

PACKAGE = Path(diffpose.__file__).resolve().parent

# Lower layers first. A module may import its own package and anything in a lower layer, nothing else:
# not a higher layer, and not a sibling package of its own layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("diffpose", "diffpose.errors", "diffpose.keypoints"),
    ("diffpose.io_utils", "diffpose.config_ranges"),
    ("diffpose.config_dicts",),
    ("diffpose.config",),
    ("diffpose.checkpoint", "diffpose.codec"),
    ("diffpose.data",),
    ("diffpose.synth", "diffpose.evaluation"),
    ("diffpose.models", "diffpose.diffusion"),
    ("diffpose.estimators",),
    ("diffpose.engine", "diffpose.export"),
    ("diffpose.inference",),
    ("diffpose.cli",),
    ("diffpose.__main__",),
)
RANK = {unit: i for i, units in enumerate(LAYERS) for unit in units}
TORCH_FREE = ("diffpose.evaluation", "diffpose.synth", "diffpose.keypoints", "diffpose.config",
              "diffpose.config_ranges", "diffpose.config_dicts", "diffpose.errors")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The layer unit a module belongs to: its subpackage (``diffpose.models``) or top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def own_imports(path: Path) -> list[tuple[str, bool, int]]:
    """``(imported diffpose module, inside a function?, line)`` for every import of the package in ``path``."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, nested, child.lineno) for a in child.names if a.name.split(".")[0] == "diffpose")
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module and \
                    child.module.split(".")[0] == "diffpose":
                found.append((child.module, nested, child.lineno))
                # "from diffpose.models import vit" imports the module diffpose.models.vit
                found.extend((f"{child.module}.{a.name}", nested, child.lineno) for a in child.names
                             if f"{child.module}.{a.name}" in SOURCES)
            visit(child, inner)

    visit(tree, False)
    return found


SOURCES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_is_in_a_layer():
    assert all(unit_of(m) in RANK for m in SOURCES), sorted(m for m in SOURCES if unit_of(m) not in RANK)


def test_imports_point_down_and_never_sideways():
    wrong = []
    for module, path in SOURCES.items():
        unit = unit_of(module)
        for target, _, line in own_imports(path):
            tunit = unit_of(target)
            if tunit == unit or target == "diffpose":
                continue
            if RANK[tunit] >= RANK[unit]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_is_hidden_inside_a_function():
    hidden = [f"{p.relative_to(PACKAGE.parent)}:{line} imports {t}"
              for p in SOURCES.values() for t, nested, line in own_imports(p) if nested]
    assert not hidden, "\n".join(hidden)


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in SOURCES}
    for module, path in SOURCES.items():
        for target, _, _ in own_imports(path):
            if target in SOURCES and target != module:
                graph[module].add(target)
    return graph


def test_no_import_circle_between_modules():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = walk(nxt)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = walk(start)
            assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("unit", TORCH_FREE)
def test_torch_free_layers_do_not_reach_torch(unit):
    """The evaluator runs on prediction files alone; the generator and conventions need no deep learning."""
    graph = _graph()
    seen, todo = set(), [m for m in SOURCES if unit_of(m) == unit]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += graph[m]
    users = sorted(m for m in seen if any(a.split(".")[0] == "torch" for a in _third_party(SOURCES[m])))
    assert not users, f"{unit} reaches torch through {users}"


def _third_party(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_the_package_docstring_states_this_order():
    doc = diffpose.__doc__
    order = [doc.index(f"``{unit}``") for unit in ("diffpose.cli", "diffpose.inference", "diffpose.engine",
                                                      "diffpose.estimators", "diffpose.models", "diffpose.data",
                                                      "diffpose.config")]
    assert order == sorted(order)


def test_no_code_asks_which_model_kind_it_holds():
    """Model kinds are named in one place (``diffpose/estimators/kinds.py``); everything else uses the interface."""
    from diffpose.estimators import KINDS

    asked = []
    for module, path in SOURCES.items():
        if module == "diffpose.estimators.kinds":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [n.value for n in (node.left, *node.comparators) if isinstance(n, ast.Constant)]
                if any(isinstance(c, str) and c in KINDS for c in consts):
                    asked.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not asked, "\n".join(asked)
