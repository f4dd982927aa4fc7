"""The package map holds: every import (top-level and function-local) goes down the stack, never in a circle.

    core -> models -> data -> infer / train -> eval -> commands

`models/` and `infer/` never import `train/` (generating never loads the training code) and
`core/` imports nothing above it. The CLI layer (commands/, installed as maa.commands) and the
recipes may import anything; the library never imports them.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what each stage may import besides itself
ALLOWED = {
    "core": set(),
    "models": {"core"},
    "data": {"core", "models"},
    "infer": {"core", "models", "data"},
    "train": {"core", "models", "data", "infer"},
    "eval": {"core", "models", "data", "infer"},
    "convert": {"core", "models", "infer"},
}


def module_files() -> dict[str, Path]:
    out = {}
    for p in (ROOT / "maa").rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    for p in (ROOT / "commands").glob("*.py"):
        out["maa.commands" + ("" if p.stem == "__init__" else "." + p.stem)] = p
    return out


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every maa module `path` imports, anywhere in the file (function bodies included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            while n and n not in modules:  # `from maa.core import io` names the module maa.core.io
                n = n.rpartition(".")[0]
            if n and n != "maa":
                found.add(n)
    return found


def graph() -> dict[str, set[str]]:
    mods = module_files()
    return {m: imports_of(p, mods) - {m} for m, p in mods.items()}


def stage(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_import_goes_down_the_stack():
    bad = []
    for mod, deps in graph().items():
        s = stage(mod)
        if s == "commands":
            continue
        for d in deps:
            t = stage(d)
            if t == "commands" or (s in ALLOWED and t != s and t not in ALLOWED[s] and t is not None):
                bad.append(f"{mod} imports {d}")
    assert not bad, "imports against the package map:\n" + "\n".join(sorted(bad))


def test_no_import_circle():
    g = graph()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_the_checker_sees_function_local_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from maa.train.loop import train\n    from maa.core import io\n")
    mods = {"maa.train.loop": f, "maa.core.io": f, "maa.core": f}
    assert imports_of(f, mods) == {"maa.train.loop", "maa.core", "maa.core.io"}


def test_library_is_installed_whole():
    """pyproject's package list names every package of the tree (a plain `pip install .` carries it)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {m for m, p in module_files().items() if p.name == "__init__.py"}
    assert on_disk <= listed, f"missing from pyproject.toml: {sorted(on_disk - listed)}"
