"""The package's import rules: one-way layers, no cycles, no own-module import hidden in a function."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "longrm_utils"

# A layer may import only what its entry lists (plus itself). The arrows run one way:
# bench -> judge -> evaluate / analysis, and bench -> train; steps and the CLI sit on top.
ALLOWED = {
    "constants": set(),
    "runtime": set(),
    "io": set(),
    "stats": set(),
    "contracts": {"constants", "io"},
    "cli": {"io", "runtime"},
    "miniature": set(),
    "modelcard": set(),
    "rundir": {"constants", "io", "runtime", "cli"},
    "store": {"constants", "io", "miniature"},
    "models": {"constants", "io", "runtime", "cli", "miniature", "modelcard", "store"},
    "bench": {"constants", "io", "runtime", "stats", "contracts", "models", "store", "rundir", "cli"},
    "judge": {"constants", "io", "runtime", "stats", "contracts", "models", "store", "rundir", "bench", "cli"},
    "evaluate": {"constants", "io", "runtime", "stats", "contracts", "models", "store", "rundir", "bench", "cli", "judge"},
    "analysis": {"constants", "io", "runtime", "stats", "contracts", "models", "store", "rundir", "bench", "cli", "judge"},
    "train": {"constants", "io", "runtime", "stats", "contracts", "models", "store", "rundir", "bench", "cli", "judge"},
}


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def own_imports(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported longrm_utils module, line, inside a function?) for each import of our own modules."""
    tree = ast.parse(path.read_text())
    pkg_parts = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []

    def visit(node, in_fn):
        for child in ast.iter_child_nodes(node):
            fn = in_fn or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = pkg_parts[: len(pkg_parts) - child.level + 1]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                if mod.startswith("longrm_utils"):
                    targets = [mod] if child.module else [f"{mod}.{a.name}" for a in child.names]
                    found.extend((t, child.lineno, in_fn) for t in targets)
            elif isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_fn) for a in child.names if a.name.startswith("longrm_utils"))
            visit(child, fn)

    visit(tree, False)
    return found


def layer(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "longrm_utils"


MODS = modules()


@pytest.mark.parametrize("name", sorted(MODS))
def test_layer_rules_and_no_hidden_imports(name):
    src = layer(name)
    for target, line, in_fn in own_imports(name, MODS[name]):
        # the package's __init__ loads rm on call so that `import longrm_utils` stays light
        if in_fn and name != "longrm_utils":
            pytest.fail(f"{MODS[name].name}:{line} imports {target} inside a function; import it at the top")
        dst = layer(target)
        if src in ALLOWED and dst != src:
            assert dst in ALLOWED[src], f"{name} (line {line}) imports {target}: {src} may not import {dst}"


def test_no_cycles():
    graph = {n: set() for n in MODS}
    for n, p in MODS.items():
        for target, _, in_fn in own_imports(n, p):
            if in_fn:
                continue
            t = target
            while t not in MODS and "." in t:  # `from .x import name` names a module or an attribute
                t = t.rsplit(".", 1)[0]
            if t in MODS and t != n:
                graph[n].add(t)
    # a package imports its own submodules from __init__, which is not a cycle of concepts
    for n in graph:
        graph[n] = {t for t in graph[n] if not (n.startswith(t + ".") and t != "longrm_utils")}
    state: dict[str, int] = {}

    def dfs(n, stack):
        state[n] = 1
        for t in graph[n]:
            if state.get(t) == 1:
                cyc = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cyc))
            if t not in state:
                dfs(t, stack + [t])
        state[n] = 2

    for n in graph:
        if n not in state:
            dfs(n, [n])


@pytest.mark.parametrize("name", sorted(MODS))
def test_modules_read_in_one_sitting(name):
    n = len(MODS[name].read_text().splitlines())
    assert n <= 600, f"{MODS[name]} has {n} lines; split it by concept"
