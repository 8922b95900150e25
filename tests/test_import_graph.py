"""Imports flow one way (docs/design.md, "Layers").

The test reads every module of ``src/latentmed`` with :mod:`ast` (nothing is imported) and fails on
an import from a lower layer into a higher one, on an import between two packages of the same
layer, on a CLI command module importing another command module, or on a cycle between modules.
Function-level (lazy) imports count the same as module-level ones: they are still dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "latentmed"

# Lowest first. A package may import its own modules and any package of a LOWER layer, nothing else.
LAYERS: list[set[str]] = [
    {"errors", "_version"},
    {"io"},
    {"config", "runtime"},
    {"metrics"},  # scores arrays and images; knows no model (PPL, which needs a decoder, is in evaluation)
    {"nn", "diffusion"},
    {"data", "pretrained"},
    {"viz"},
    {"train"},
    {"dae", "shape", "ldm"},
    {"latent", "segment"},
    {"evaluation"},
    {"demo"},
    {"cli"},
]
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}
# cli/main.py assembles the app; every other CLI module may use only cli/_common.py.
CLI_SHARED = {"latentmed.cli._common", "latentmed.cli"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every ``latentmed`` module ``path`` imports (``from a import b`` counts ``a`` and ``a.b``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found.update(c for c in candidates if c.split(".")[0] == "latentmed")
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        # keep only targets that are modules (``from x import func`` names a function, not a module)
        graph[name] = {t for t in _imports(path) if t in files and t != name}
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    packages = {_package(m) for m in _graph()} - {""}
    assert packages <= set(RANK), f"packages without a layer in LAYERS: {sorted(packages - set(RANK))}"


def _wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """Edges from a package to one of the same or a higher layer."""
    bad = []
    for module, targets in sorted(graph.items()):
        src = _package(module)
        for target in sorted(targets):
            dst = _package(target)
            if dst not in ("", src) and RANK[dst] >= RANK[src]:
                bad.append(f"{module} -> {target} ({src} layer {RANK[src]}, {dst} layer {RANK[dst]})")
    return bad


def _cycles(edges: dict[str, set[str]]) -> list[str]:
    """Every back edge of a depth-first walk, as the cycle it closes."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return cycles


def test_imports_flow_one_way():
    bad = _wrong_way(_graph())
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_cli_commands_import_only_the_shared_module():
    bad = []
    for module, targets in sorted(_graph().items()):
        if _package(module) != "cli" or module in ("latentmed.cli", "latentmed.cli.main"):
            continue
        bad += [f"{module} -> {t}" for t in sorted(targets) if _package(t) == "cli" and t not in CLI_SHARED]
    assert not bad, "CLI command modules importing each other:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = _graph()
    # a package __init__ re-exporting its modules is not a cycle of the code: drop edges into __init__s
    inits = {m for m in graph if (ROOT.parent / Path(*m.split("."))).is_dir()}
    cycles = _cycles({m: {t for t in ts if t not in inits} for m, ts in graph.items()})
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checkers_can_fail():
    """The rules themselves find a wrong-way edge, a same-layer edge and a cycle in a made-up graph."""
    graph = {"latentmed.viz.grid": {"latentmed.latent.grader", "latentmed.viz.figure"},
             "latentmed.dae.model": {"latentmed.ldm.model", "latentmed.nn.unet"}}
    assert [e.split(" (")[0] for e in _wrong_way(graph)] == [
        "latentmed.dae.model -> latentmed.ldm.model", "latentmed.viz.grid -> latentmed.latent.grader"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert _cycles({"a": {"b"}, "b": {"c"}}) == []
