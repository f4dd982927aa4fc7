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

Prints one JSON line: {"files": N, "mode_files": [...], "function_files": M, "class_bodies_only":
[...], "per_file": {path: calls}}, and the files one per line on stderr. "files" is the issue's
count (a class body run at import counts as a call); "function_files" leaves class bodies out too.
"""

from __future__ import annotations

import argparse
import json
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


def walk(generate_args: list[str], cwd: Path) -> tuple[dict, list[str]]:
    """({file relative to the repo: calls}, the files of those whose calls include a function, not
    only class bodies) of one `maa generate ...` run in a fresh interpreter."""
    out = cwd / "walk.json"
    cmd = [sys.executable, "-c", CHILD, str(out), str(ROOT / "maa"), str(ROOT / "commands"), "generate", *generate_args]
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    got = json.loads(out.read_text())
    if got["exit"] not in (0, None):
        raise SystemExit(f"walk_files: maa generate exited with {got['exit']}")
    rel = lambda f: str(Path(f).relative_to(ROOT))
    return {rel(f): n for f, n in sorted(got["calls"].items())}, [rel(f) for f in got["funcs"]]


def mode_files(per_file: dict) -> list[str]:
    """The files of modes a plain prompt does not use that it called into anyway."""
    return [f for f in per_file if Path(f).stem in MODE_FILES]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model folder (default: the bundled model)")
    ap.add_argument("--tiny", action="store_true", help="a tiny random model made here (tests/ldm_fixtures.py)")
    ap.add_argument("--prompt", default="a dog barks while rain falls")
    ap.add_argument("rest", nargs="*", help="more `maa generate` arguments, after --")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = a.model
        if a.tiny:
            sys.path.insert(0, str(ROOT))
            from tests.ldm_fixtures import make_model_dir

            model = str(make_model_dir(tmp / "model"))
        args = [a.prompt, "-o", str(tmp / "x.wav"), "-q", *(["--model", model] if model else []), *a.rest]
        per_file, funcs = walk(args, tmp)
    for f, n in per_file.items():
        print(f"{n:8d}  {f}", file=sys.stderr)
    print(json.dumps({"files": len(per_file), "mode_files": mode_files(per_file), "model": model or "bundled",
                      "function_files": len(funcs), "class_bodies_only": sorted(set(per_file) - set(funcs)),
                      "per_file": per_file}))


if __name__ == "__main__":
    main()
