"""The steps of `make finetune` that are not maa commands: import a folder, hold out clips, write prompts and the card.

    python -m recipes.finetune import my_sounds/ -o runs/ft/data/clips.jsonl     # labels from sub-folder names
    python -m recipes.finetune split runs/ft/data/captioned.jsonl -o runs/ft/data --holdout 0.1
    python -m recipes.finetune prompts runs/ft/data/heldout.jsonl -o runs/ft/eval/prompts.txt
    python -m recipes.finetune card runs/ft                                      # runs/ft/CARD.md (+ JSON on stdout)
    python -m recipes.finetune minetest data/minetest                            # the example folder (Debian minetest-data)

Every output is written atomically, so a stage either finished or left nothing (Make's stamps).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path

from maa.core.errors import MaaError
from maa.core.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from maa.core.audio import audio_info
from maa.data.formats import read_manifest
from maa.core.manifest import caption_of


def import_folder(folder: str | Path, out: str | Path) -> list[dict]:
    """A folder of clips -> a manifest with durations. A sub-folder's name is its clips' label (`_` read
    as a space) and, for clips without a caption, their caption: it is what the user called the sound."""
    src = Path(folder)
    if not src.is_dir():
        raise MaaError(f"FOLDER={folder}: not a folder; give the folder of your clips (sub-folders name their sounds)")
    rows = read_manifest(src)
    for r in rows:
        if r.get("labels"):
            r["labels"] = [" ".join(lab.replace("_", " ").split()) for lab in r["labels"]]
            r.setdefault("caption", r["labels"][0])
        try:
            r["duration"] = round(float(audio_info(r["audio"]).duration), 3)
        except Exception:  # noqa: BLE001 - `maa mel` reports unreadable clips in its failed.jsonl
            pass
    write_jsonl_atomic(out, rows)
    return rows


def split(manifest: str | Path, out_dir: str | Path, holdout: float = 0.1, min_holdout: int = 4,
          max_holdout: int = 20) -> tuple[list[dict], list[dict]]:
    """train.jsonl and heldout.jsonl: a share of the clips held out, spread over the labels; a label
    with one clip stays in training. Deterministic (sorted by id)."""
    rows = sorted(read_manifest(manifest), key=lambda r: r["id"])
    rows = [r for r in rows if caption_of(r)]
    if len(rows) < 3:
        raise MaaError(f"{manifest}: {len(rows)} captioned clips; a fine-tune needs a few more (10 or more)")
    n = min(max_holdout, max(min_holdout, round(holdout * len(rows))), len(rows) // 3)
    groups = defaultdict(list)
    for r in rows:
        groups[(r.get("labels") or [caption_of(r)])[0]].append(r)
    # the biggest labels first: what the folder is mostly about is what the card should measure
    held, order = [], sorted((g for g in groups if len(groups[g]) > 1), key=lambda g: (-len(groups[g]), g)) or sorted(groups)
    depth = 0
    while len(held) < n and depth < max(len(g) for g in groups.values()):
        for g in order:  # round-robin over the labels, never the last clip of a label
            if len(held) < n and depth < len(groups[g]) - 1:
                held.append(groups[g][len(groups[g]) - 1 - depth])
        depth += 1
    ids = {r["id"] for r in held}
    train = [r for r in rows if r["id"] not in ids]
    out = Path(out_dir)
    write_jsonl_atomic(out / "train.jsonl", train)
    write_jsonl_atomic(out / "heldout.jsonl", held)
    return train, held


def prompts(heldout: str | Path, out: str | Path) -> int:
    """`id|caption` per held-out clip: generated clips share the ids, so `maa eval` pairs them."""
    rows = read_manifest(heldout)
    write_text_atomic(out, "".join(f"{r['id']}|{' '.join(caption_of(r).split())}\n" for r in rows))
    return len(rows)


def _metrics(path: Path) -> dict:
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    out = {}
    for name, block in (m.get("extractors") or {}).items() if isinstance(m.get("extractors"), dict) else []:
        for k in ("fd", "clap_score"):
            if isinstance(block, dict) and block.get(k) is not None:
                out[f"{k}_{name.split(':')[0]}"] = block[k]
    return out or {k: v for k, v in m.items() if isinstance(v, (int, float))}


def card(run: str | Path) -> dict:
    """RUN/CARD.md: the data, the adapter, and held-out scores before and after (from RUN/eval/)."""
    run = Path(run)
    meta = json.loads((run / "adapter" / "lora" / "lora.json").read_text())
    size = (run / "adapter" / "lora" / "lora.safetensors").stat().st_size
    rows = [json.loads(x) for x in (run / "adapter" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    speeds = [r["samples_per_s"] for r in rows if r.get("kind") == "train" and r.get("samples_per_s")]
    batch = meta.get("train", {}).get("batch_size", 1)
    before, after = _metrics(run / "eval" / "before.metrics.json"), _metrics(run / "eval" / "after.metrics.json")
    out = {"adapter": str(run / "adapter"), "adapter_mb": round(size / 1e6, 3), "rank": meta["rank"],
           "alpha": meta["alpha"], "targets": meta["targets"], "steps": meta.get("train", {}).get("steps_done"),
           "steps_per_s": round(sum(speeds) / len(speeds) / batch, 3) if speeds else None,
           "clips": meta["data"]["clips"], "held_out": len(Path(run / "data" / "heldout.jsonl").read_text().splitlines()),
           "before": before, "after": after}
    lines = [f"# Fine-tune card: {run}", "",
             f"Base model `{meta['base']['model']}` (UNet sha256 {meta['base']['unet_sha256']}); "
             f"LoRA rank {meta['rank']}, alpha {meta['alpha']:g}, targets {', '.join(meta['targets'])}; "
             f"{out['steps']} steps, {out['adapter_mb']} MB; {out['clips']} training clips, {out['held_out']} held out.",
             "", "Labels: " + ", ".join(f"{k} ({v})" for k, v in meta["data"].get("labels", {}).items()), "",
             "Held-out clips, generated from their captions with the base model and with the adapter "
             "(`maa eval` against the held-out recordings; FD lower is better, audio-text score higher):", "",
             "| metric | before | after |", "|---|---|---|"]
    for k in sorted(set(before) | set(after)):
        b, a = before.get(k), after.get(k)
        lines.append(f"| {k} | {b if b is None else f'{b:.4g}'} | {a if a is None else f'{a:.4g}'} |")
    lines += ["", f"Use it: `maa generate \"...\" --model {meta['base']['model']} --lora {run / 'adapter'}`", ""]
    write_text_atomic(run / "CARD.md", "\n".join(lines))
    write_json_atomic(run / "card.json", out)
    return out


# minetest-data sound names -> the label (sub-folder) of the example folder
MINETEST_LABELS = [
    ("_gravel_footstep", "footsteps on gravel"), ("_snow_footstep", "footsteps on snow"),
    ("_grass_footstep", "footsteps on grass"), ("_dirt_footstep", "footsteps on dirt"),
    ("_sand_footstep", "footsteps on sand"), ("_wood_footstep", "footsteps on wood"),
    ("_ice_footstep", "footsteps on ice"), ("_glass_footstep", "footsteps on glass"),
    ("_metal_footstep", "footsteps on metal"), ("_hard_footstep", "footsteps on stone"),
    ("_water_footstep", "footsteps in water"), ("default_dig_", "digging"), ("_gravel_dig", "digging"),
    ("_ice_dig", "digging"), ("_dug", "a block breaks"), ("default_place_node", "a block is placed"),
    ("default_break_glass", "glass breaks"), ("default_tool_breaks", "a tool breaks"),
    ("carts_cart_moving", "a cart rolls on rails"), ("env_sounds_water", "water flows"),
    ("lava", "lava bubbles and hisses"), ("fire_extinguish", "a flame is put out"), ("fire_", "a fire crackles"),
    ("door_open", "a door opens"), ("door_close", "a door closes"), ("fencegate", "a gate swings"),
    ("chest_", "a wooden chest opens or closes"), ("tnt_explode", "an explosion"),
]


def minetest(out: str | Path, root: str | Path = "/usr/share/games/minetest") -> int:
    """The example folder: minetest-data's sounds sorted into labelled sub-folders (see MINETEST_LABELS)."""
    src = sorted(Path(root).rglob("*.ogg"))
    if not src:
        raise MaaError(f"{root}: no minetest sounds; install them with `apt-get install minetest-data`")
    out, tmp, n = Path(out), Path(out).with_name(f".{Path(out).name}.tmp"), 0
    if tmp.exists():
        shutil.rmtree(tmp)
    for p in src:
        label = next((lab for key, lab in MINETEST_LABELS if key in p.name), None)
        if label is None:
            continue
        (tmp / label).mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, tmp / label / p.name)
        n += 1
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return n


def main(argv: list[str] | None = None) -> int:
    """`python -m recipes.finetune import|split|prompts|card|minetest ...` (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m recipes.finetune", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("import")
    p.add_argument("folder")
    p.add_argument("-o", "--out", required=True)
    p = sub.add_parser("split")
    p.add_argument("manifest")
    p.add_argument("-o", "--out-dir", required=True)
    p.add_argument("--holdout", type=float, default=0.1, help="share of the clips held out (4 to 20 clips)")
    p = sub.add_parser("prompts")
    p.add_argument("heldout")
    p.add_argument("-o", "--out", required=True)
    p = sub.add_parser("card")
    p.add_argument("run")
    p = sub.add_parser("minetest")
    p.add_argument("out")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "import":
            rows = import_folder(a.folder, a.out)
            labels = sorted({lab for r in rows for lab in r.get("labels", [])})
            print(f"finetune: {len(rows)} clips from {a.folder}, {len(labels)} labels", file=sys.stderr)
        elif a.cmd == "split":
            train, held = split(a.manifest, a.out_dir, a.holdout)
            print(f"finetune: {len(train)} training clips, {len(held)} held out", file=sys.stderr)
        elif a.cmd == "prompts":
            prompts(a.heldout, a.out)
        elif a.cmd == "card":
            out = card(a.run)
            print(Path(a.run, "CARD.md").read_text(), file=sys.stderr)
            print(json.dumps(out))
        elif a.cmd == "minetest":
            print(f"finetune: {minetest(a.out)} minetest-data clips in {a.out}", file=sys.stderr)
    except MaaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
