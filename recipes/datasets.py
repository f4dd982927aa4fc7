"""Data-set steps of the paper-scale chain (recipes/datasets.mk), as a small CLI.

    python -m recipes.datasets import audiocaps clotho wavcaps esc50 --root /data -o RUN/data
    python -m recipes.datasets merge RUN/mels/manifest-*-of-8.jsonl -o RUN/mels/manifest.jsonl
    python -m recipes.datasets expand RUN/captioned.jsonl -o RUN/train.jsonl

    python -m recipes.datasets pair RUN/gen/generated.jsonl RUN/data/test-audiocaps.jsonl -o RUN/gen.jsonl

`import` runs maa.data.importers on every named set found under ROOT/<folder> and writes one
combined training manifest (see maa.data.importers.combine). `merge` joins the manifests of
`maa mel --shard I/N` runs. `expand` gives every caption of a clip its own training row. `pair` turns the JSON lines of
`maa generate --prompts TEST` into the GENERATED manifest of `maa eval`: each clip under its test
clip's id (generate may add a suffix to the name), with its prompt as `caption`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maa.core.errors import MaaError
from maa.core.manifest import write_manifest
from maa.data.formats import read_manifest
from maa.data.importers import IMPORTERS, check_out_dir, combine, expand_captions, import_set


def cmd_import(a) -> None:
    """`import`: the named data sets -> one combined training manifest."""
    check_out_dir(a.out)  # before the (long) import
    sets = [import_set(name, a.root) for name in a.names]
    for s in sets:  # rows left out are named, never dropped without a word
        if s.skipped:
            more = f" (and {len(s.skipped) - 3} more)" if len(s.skipped) > 3 else ""
            print(f"warning: {s.name}: {len(s.skipped)} row(s) left out: {'; '.join(s.skipped[:3])}{more}", file=sys.stderr)
    if not any(s.rows for s in sets):
        raise MaaError(f"{a.root}: no clip imported from {', '.join(a.names)} ("
                       + "; ".join(f"{s.name}: {len(s.missing)} without audio, {len(s.skipped)} rows left out" for s in sets)
                       + "); check the CSVs and that the audio lies where the README's layouts say")
    s = combine(sets, a.out, hash_check=not a.no_hash)
    for name, c in s["sets"].items():
        print(f"import: {name}: " + ", ".join(f"{k} {v}" for k, v in c.items()), file=sys.stderr)
    check = s["test_clips_kept_out_of_training"]
    print(f"import: train {s['train']} clips ({s['train_captions']} captions, {s['needs_caption']} to caption), "
          f"val {s['val']}, test {s['test']}; dropped {s['dropped']}; missing {s['missing']} "
          f"(listed in {Path(a.out) / 'missing.jsonl'}); test clips out of training: "
          f"{'yes' if check['ok'] else 'NO'} -> {Path(a.out) / 'summary.json'}", file=sys.stderr)
    if not check["ok"]:
        raise MaaError(f"test clips leaked into training: {check}")


def cmd_merge(a) -> None:
    """`merge`: join manifests (the shards of `maa mel`), first row of an id wins."""
    rows, seen = [], set()
    for p in a.manifests:
        for r in read_manifest(p):
            if r["id"] not in seen:
                seen.add(r["id"])
                rows.append(r)
    write_manifest(a.out, rows)
    print(f"merge: {len(rows)} rows from {len(a.manifests)} manifests -> {a.out}", file=sys.stderr)


def cmd_expand(a) -> None:
    """`expand`: one training row per caption."""
    rows = [r for r in read_manifest(a.manifest) if not a.need_mel or r.get("mel")]
    out = expand_captions(rows)
    write_manifest(a.out, out)
    print(f"expand: {len(rows)} clips -> {len(out)} caption rows -> {a.out}", file=sys.stderr)


def cmd_pair(a) -> None:
    """`pair`: generate's JSON lines -> the GENERATED manifest of `maa eval`, keyed by the test ids."""
    refs = {r["id"]: r for r in read_manifest(a.reference)}
    rows = []
    for n, line in enumerate(Path(a.generated).read_text().splitlines(), 1):
        if not line.strip():
            continue
        g = json.loads(line)
        gid = str(g.get("id", ""))
        # longest reference id that is the generated id or its prefix before a "-" suffix
        match = max((r for r in refs if gid == r or gid.startswith(r + "-")), key=len, default=None)
        if match is None:
            raise MaaError(f"{a.generated} line {n}: id {gid!r} matches no clip of {a.reference}; "
                           "generate with --prompts on that manifest")
        rows.append({"id": match, "audio": g.get("audio") or g["path"], "caption": g.get("prompt") or refs[match].get("caption"),
                     "prompt": g.get("prompt"), "candidates": int(g.get("candidates", 1))})
    write_manifest(a.out, rows)
    print(f"pair: {len(rows)} generated clips of {len(refs)} test clips -> {a.out}", file=sys.stderr)


def main(argv=None):
    """`python -m recipes.datasets`: the data-set steps of the paper-scale chain."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("import", help="import data sets into one training manifest")
    p.add_argument("names", nargs="+", choices=sorted(IMPORTERS))
    p.add_argument("--root", required=True, type=Path, help="folder holding one subfolder per data set")
    p.add_argument("-o", "--out", required=True, type=Path)
    p.add_argument("--no-hash", action="store_true", help="de-duplicate by clip key only (no file hashing)")
    p.set_defaults(fn=cmd_import)
    p = sub.add_parser("merge", help="join manifests (shards of maa mel)")
    p.add_argument("manifests", nargs="+")
    p.add_argument("-o", "--out", required=True)
    p.set_defaults(fn=cmd_merge)
    p = sub.add_parser("expand", help="one training row per caption")
    p.add_argument("manifest")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--need-mel", action="store_true", help="drop rows without a mel (clips maa mel could not read)")
    p.set_defaults(fn=cmd_expand)
    p = sub.add_parser("pair", help="generate's JSON lines -> an eval manifest keyed by the test clip ids")
    p.add_argument("generated")
    p.add_argument("reference")
    p.add_argument("-o", "--out", required=True)
    p.set_defaults(fn=cmd_pair)
    a = ap.parse_args(argv)
    try:
        a.fn(a)
    except MaaError as e:
        raise SystemExit(f"error: {e}")


if __name__ == "__main__":
    main()
