"""The architecture, checked: layers only import downwards, there are no import cycles, and only the CLI
knows click and rich (an AST scan of every module's imports, top-level and local alike)."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "pipeline"

# Top to bottom; a module may import its own layer or any layer below it, never one above.
LAYERS = [
    {"cli", "__main__"},
    {"batch", "bench", "evaluate", "serve", "farm"},
    {"jobs", "train", "project"},
    {"checkpoint", "torchfile", "digit_classifier"},
    {"render", "data", "video", "container", "provenance", "latents", "coords", "scene", "audio"},
    {"models", "native", "devices"},
    {"atomic", "lock", "paths", "lazy", "errors", "stops", "text", "__init__"},
]
UI_ONLY = {"click", "rich"}


def _layer_of(part: str) -> int:
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise AssertionError(f"pipeline.{part} is in no layer of tests/test_layers.py; add it where it belongs")


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        yield ".".join(("pipeline",) + rel.parts), path


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_layers_only_import_downwards():
    bad = []
    for name, path in _modules():
        parts = name.split(".")
        top = parts[1] if len(parts) > 1 else "__init__"
        mine = _layer_of(top)
        for imported in _imports(path):
            if not imported.startswith("pipeline.") or imported.count(".") < 1:
                continue
            other = imported.split(".")[1]
            if other == "__version__" or other == top:
                continue
            try:
                theirs = _layer_of(other)
            except AssertionError:
                continue  # a name imported from a package's __init__ (e.g. pipeline.__version__)
            if theirs < mine:
                bad.append(f"{name} imports {imported} (layer {LAYERS[theirs]} is above {LAYERS[mine]})")
    assert not bad, "\n".join(bad)


def test_only_the_cli_knows_click_and_rich():
    bad = [f"{name} imports {imp}" for name, path in _modules() if not name.startswith("pipeline.cli")
           for imp in _imports(path) if imp.split(".")[0] in UI_ONLY]
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules():
    graph = {}
    names = {name for name, _ in _modules()}
    for name, path in _modules():
        deps = set()
        for imp in _imports(path):
            while imp and imp not in names:
                imp = imp.rpartition(".")[0]
            if imp and imp != name and not imp.endswith("__init__"):
                deps.add(imp)
        graph[name] = deps
    # packages import their submodules lazily or re-export them; a package -> its own child is not a cycle
    for name in graph:
        graph[name] = {d for d in graph[name] if not d.startswith(name + ".")}
    state, cycles = {}, []

    def visit(n, stack):
        state[n] = 1
        stack.append(n)
        for d in graph.get(n, ()):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
