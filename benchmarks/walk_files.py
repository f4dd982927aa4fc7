"""How many of the project's files one plain `maa generate "..." -o x.wav` calls functions in.

A `sys.setprofile` hook (also set for threads) sees every Python 'call' event of the command, run
in a fresh interpreter exactly as the installed `maa` script runs it (`maa.commands.cli.main`).
Module bodies (`<module>` code objects, run once at import) are left out: what counts is the
code the prompt walks through. Only files under this repository's maa/ and commands/ count.
A plain prompt should not touch the modules of modes it does not use; the ones a plain prompt
must not call (MODE_FILES) are flagged.

    .venv/bin/python benchmarks/walk_files.py                         # the bundled model, all defaults
    .venv/bin/python benchmarks/walk_files.py --model runs/demo -- -d 1 --steps 2
    .venv/bin/python benchmarks/walk_files.py --tiny                  # a tiny random model (tests' fixture)
    .venv/bin/python benchmarks/walk_files.py --baseline d78e540       # and the same walk of that revision

Prints one JSON line: {"files": N, "mode_files": [...], "function_files": M, "class_bodies_only":
[...], "per_file": {path: calls}} (with --baseline, the same for that revision under
"baseline"), and the files one per line on stderr. "files" is the issue's
count (a class body run at import counts as a call); "function_files" leaves class bodies out too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# modules of modes a plain default prompt does not use (composition's maa/infer/temporal.py is
# allowed only for prompts with order words)
MODE_FILES = ("inpaint", "longform", "timeline", "temporal", "laion", "bigvgan")

CHILD = r"""
import json, sys, threading
from pathlib import Path
roots = tuple(str(Path(p).resolve()) + "/" for p in sys.argv[2:4])
seen, calls, funcs = {}, {}, set()

def hook(frame, event, arg):
    if event != "call":
        return
    code = frame.f_code
    if code.co_name == "<module>":
        return
    f = code.co_filename
    hit = seen.get(f)
    if hit is None:
        hit = seen[f] = str(Path(f).resolve()) if str(Path(f).resolve()).startswith(roots) else ""
    if hit:
        calls[hit] = calls.get(hit, 0) + 1
        if code.co_flags & 2:  # CO_NEWLOCALS: a function, not a class body
            funcs.add(hit)

out = sys.argv[1]
sys.argv = ["maa", *sys.argv[4:]]
threading.setprofile(hook)
sys.setprofile(hook)
try:
    from maa.commands.cli import main
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
finally:
    sys.setprofile(None)
    threading.setprofile(None)
Path(out).write_text(json.dumps({"calls": calls, "funcs": sorted(funcs), "exit": code}))
"""


def walk(generate_args: list[str], cwd: Path, tree: Path | None = None) -> tuple[dict, list[str]]:
    """({file relative to the repo: calls}, the files of those whose calls include a function, not
    only class bodies) of one `maa generate ...` run in a fresh interpreter: of this checkout, or of
    `tree` (an exported revision, `export`), put first on the import path."""
    out = cwd / "walk.json"
    env = dict(os.environ)
    if tree is None:
        roots = [ROOT / "maa", ROOT / "commands"]
    else:
        roots = [tree / "maa", tree / "maa" / "commands"]
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-c", CHILD, str(out), *map(str, roots), "generate", *generate_args]
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)
    got = json.loads(out.read_text())
    if got["exit"] not in (0, None):
        raise SystemExit(f"walk_files: maa generate exited with {got['exit']}")

    def rel(f: str) -> str:
        f = Path(f)
        if tree is not None and f.is_relative_to(tree / "maa" / "commands"):
            return str(Path("commands") / f.relative_to(tree / "maa" / "commands"))
        return str(f.relative_to(tree or ROOT))

    return {rel(f): n for f, n in sorted(got["calls"].items())}, [rel(f) for f in got["funcs"]]


def export(rev: str, dest: Path) -> Path:
    """The library and commands of git revision `rev` under dest, laid out as installed
    (commands/ as maa/commands/); the bundled model is not copied (pass --model)."""
    dest.mkdir(parents=True)
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "maa", "commands", ":(exclude)maa/assets/model"],
                         check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    (dest / "commands").rename(dest / "maa" / "commands")
    return dest


def summary(per_file: dict, funcs: list[str]) -> dict:
    return {"files": len(per_file), "mode_files": mode_files(per_file), "function_files": len(funcs),
            "class_bodies_only": sorted(set(per_file) - set(funcs))}


def mode_files(per_file: dict) -> list[str]:
    """The files of modes a plain prompt does not use that it called into anyway."""
    return [f for f in per_file if Path(f).stem in MODE_FILES]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model folder (default: the bundled model)")
    ap.add_argument("--tiny", action="store_true", help="a tiny random model made here (tests/ldm_fixtures.py)")
    ap.add_argument("--prompt", default="a dog barks while rain falls")
    ap.add_argument("--baseline", metavar="REV", help="also walk git revision REV (e.g. main) in this run, for comparison")
    ap.add_argument("rest", nargs="*", help="more `maa generate` arguments, after --")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = a.model
        if a.tiny:
            sys.path.insert(0, str(ROOT))
            from tests.ldm_fixtures import make_model_dir  # noqa: PLC0415  tests/ is on sys.path only for --tiny

            model = str(make_model_dir(tmp / "model"))
        args = ["-q", "--model", model or str(ROOT / "maa" / "assets" / "model"), *a.rest]
        per_file, funcs = walk([a.prompt, "-o", str(tmp / "x.wav"), *args], tmp)
        base = None
        if a.baseline:  # its own output file: a rerun would skip the one made above
            base = walk([a.prompt, "-o", str(tmp / "base.wav"), *args], tmp, export(a.baseline, tmp / "base"))
    for f, n in per_file.items():
        print(f"{n:8d}  {f}", file=sys.stderr)
    row = {**summary(per_file, funcs), "model": model or "bundled", "per_file": per_file}
    if base is not None:
        row["baseline"] = {"rev": a.baseline, **summary(*base), "per_file": base[0]}
    print(json.dumps(row))


if __name__ == "__main__":
    main()
