"""The package map holds: every import (top-level and function-local) goes down the stack, never in a circle.

    core -> models -> parts -> data -> infer | train | eval | convert -> commands

`parts/` loads trained parts (text encoders, scorers, vocoders) for every stage above it.
infer/, train/, eval/ and convert/ are siblings: none imports another (generating never loads
the training code, evaluating never loads the generator). `core/` imports nothing above it and
names no CLI command. The CLI layer (commands/, installed as maa.commands) and the
recipes may import anything; the library never imports them.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what each stage may import besides itself
ALLOWED = {
    "core": set(),
    "models": {"core"},
    "parts": {"core", "models"},
    "data": {"core", "models", "parts"},
    "infer": {"core", "models", "parts", "data"},
    "train": {"core", "models", "parts", "data"},
    "eval": {"core", "models", "parts", "data"},
    "convert": {"core", "models", "parts", "data"},
}
SIBLINGS = ("infer", "train", "eval", "convert")


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


def test_siblings_import_only_downward():
    """infer/, train/, eval/ and convert/ share the layers below them and import none of each other."""
    bad = [f"{m} imports {d}" for m, deps in graph().items() for d in deps
           if stage(m) in SIBLINGS and stage(d) in SIBLINGS and stage(d) != stage(m)]
    assert not bad, "a stage imports a sibling:\n" + "\n".join(sorted(bad))
    for s in SIBLINGS:  # and the map itself says so, so a later edit of ALLOWED cannot quietly allow it
        assert not ALLOWED[s] & set(SIBLINGS), s


def test_parts_sit_between_models_and_data():
    assert ALLOWED["parts"] == {"core", "models"}
    assert "parts" not in ALLOWED["models"] and "parts" in ALLOWED["data"]
    assert all("parts" in ALLOWED[s] for s in SIBLINGS)


def test_the_package_does_not_import_its_own_top():
    """`maa/__init__` (the public face) is imported by no library module: the version lives in core."""
    bad = []
    for mod, p in module_files().items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "maa" and node.level == 0 \
                    and not mod.startswith("maa.commands"):
                bad.append(f"{mod}: from maa import {', '.join(a.name for a in node.names)}")
            elif isinstance(node, ast.Import) and any(a.name == "maa" for a in node.names) and mod != "maa":
                bad.append(f"{mod}: import maa")
    assert not bad, "\n".join(bad)


def command_names() -> set[str]:
    """The subcommand names the CLI registers (read from commands/cli.py's source)."""
    src = (ROOT / "commands" / "cli.py").read_text()
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("command", "add_typer"):
            for arg in [*node.args, *(k.value for k in node.keywords if k.arg == "name")]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
    return names


def cli_names_in(src: str, names: set[str]) -> list[str]:
    """Where `src` names CLI commands: a list/tuple/set literal holding two or more of them (a policy
    table), or a hyphenated command name anywhere (`mel`, `eval`, `caption` alone are also field names)."""
    out = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            hits = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names]
            if len(hits) >= 2:
                out.append(f"{node.lineno}: {hits}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "-" in node.value \
                and node.value in names:
            out.append(f"{node.lineno}: {node.value!r}")
    return out


def test_core_names_no_cli_command():
    """core/ holds mechanisms; which command is long work (or any per-command policy) is commands/' knowledge."""
    names = command_names()
    assert {"generate", "train-ldm", "mel", "eval"} <= names  # the reader sees the CLI
    bad = [f"{p.name}:{hit}" for p in sorted((ROOT / "maa" / "core").glob("*.py"))
           for hit in cli_names_in(p.read_text(), names)]
    assert not bad, "CLI command names in core/:\n" + "\n".join(bad)


def test_the_cli_name_check_can_fail():
    names = {"mel", "eval", "train-ldm"}
    assert cli_names_in("LONG = ('mel', 'eval')\nx = 'train-ldm'\n", names) == ["1: ['mel', 'eval']", "2: 'train-ldm'"]
    assert cli_names_in("row['mel'] = row['caption']\n", names) == []


def test_one_progress_convention():
    """Bars come from maa.core.progress only (quiet under -q, one line per stage off a terminal)."""
    bad = []
    for mod, p in module_files().items():
        if mod == "maa.core.progress":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "tqdm" or n.startswith(("tqdm.", "rich.progress")) for n in names):
                bad.append(f"{mod}:{node.lineno}")
    assert not bad, "progress bars outside maa.core.progress:\n" + "\n".join(bad)


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
