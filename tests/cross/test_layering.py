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
    ("diffpose.io_outputs",),
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


KIND_AWARE = ("diffpose.models", "diffpose.estimators")  # the packages that may know the model kinds


def kind_dispatch(tree: ast.AST, kinds: set[str], classes: set[str]) -> list[tuple[int, str]]:
    """``(line, what)`` for every place in ``tree`` that branches on a model kind instead of asking the estimator:
    a kind's name compared, tested for membership, used as a dict key, a subscript or a match pattern, and a
    kind's network or estimator class imported or given to ``isinstance`` / ``issubclass``."""
    def names_kind(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str) and node.value in kinds
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(names_kind(e) for e in node.elts)
        return False

    def names_class(node: ast.AST) -> bool:
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(names_class(e) for e in node.elts)
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        return name in classes

    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare) and any(names_kind(n) for n in (node.left, *node.comparators)):
            found.append((line, "compares a kind name"))
        elif isinstance(node, ast.Dict) and any(k is not None and names_kind(k) for k in node.keys):
            found.append((line, "a dict keyed by kind names"))
        elif isinstance(node, ast.Subscript) and names_kind(node.slice):
            found.append((line, "looks up a kind name"))
        elif isinstance(node, ast.MatchValue) and names_kind(node.value):
            found.append((line, "matches a kind name"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("isinstance", "issubclass") and len(node.args) == 2 and names_class(node.args[1]):
            found.append((line, f"{node.func.id} with a kind's class"))
        elif isinstance(node, ast.ImportFrom) and any(a.name in classes for a in node.names):
            found.append((line, "imports a kind's class"))
    return found


def _kind_vocabulary() -> tuple[set[str], set[str]]:
    from diffpose.estimators import KINDS

    classes = {c.__name__ for kind in KINDS.values() for c in (kind.network, kind.estimator)}
    return set(KINDS), classes


def test_no_code_outside_models_and_estimators_branches_on_the_model_kind():
    """Model kinds are known to ``diffpose/models/`` and ``diffpose/estimators/`` only; everything else asks the
    estimator what it can do (its graphs, complexity, memory, whether it samples)."""
    kinds, classes = _kind_vocabulary()
    asked = [f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
             for module, path in SOURCES.items() if unit_of(module) not in KIND_AWARE
             for line, what in kind_dispatch(ast.parse(path.read_text()), kinds, classes)]
    assert not asked, "\n".join(asked)


@pytest.mark.parametrize("code", [
    'if cfg.model.kind == "baseline": pass',
    'ok = kind in ("diffpose", "regression")',
    'files = {"diffpose": 1}',
    'x = table["regression"]',
    'match kind:\n    case "baseline": pass',
    'if isinstance(net, DiffPoseNet): pass',
    'if isinstance(est, (RegressionEstimator, int)): pass',
    'from diffpose.models import BaselineNet',
])
def test_the_kind_guard_catches_every_form_of_dispatch(code):
    kinds, classes = _kind_vocabulary()
    assert kind_dispatch(ast.parse(code), kinds, classes), code


def test_the_kind_guard_lets_capabilities_through():
    kinds, classes = _kind_vocabulary()
    code = ("if estimator.samples: pass\nfor method, graph in estimator.graphs(cfg).items(): pass\n"
            "name = cfg.model.kind\nprint(f'{name} model')\nkind = get_kind(cfg.model.kind)")
    assert kind_dispatch(ast.parse(code), kinds, classes) == []
