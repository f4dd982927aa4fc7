"""Does generated audio follow its text? Prompt retrieval with an audio-text scorer.

Reads the JSON lines `maa generate --prompts ... --manifest gen.jsonl` wrote, embeds every
generated clip and every distinct prompt with the scorer, and reports how often a clip's own
prompt scores highest among all prompts (top-1), next to chance (1 / #prompts). With --ref, the
same is measured on real clips of a manifest whose captions are the prompts (the scorer's own
ceiling on this data), in the same run.

    .venv/bin/python benchmarks/check_generate_text.py gen.jsonl --scorer maa-clap:runs/clap/clap \
        --ref data/demo/test.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from maa.core.audio import load_audio
from maa.data.formats import read_manifest
from maa.parts.scorers import load_scorer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def retrieval(scorer, wavs: list[np.ndarray], own: list[str], prompts: list[str]) -> tuple[float, float, float]:
    """(top-1 accuracy, mean own-prompt cosine, mean other-prompt cosine)."""
    a = scorer.embed_audio(wavs)
    t = scorer.embed_text(prompts)
    sim = (a @ t.T).float()
    idx = torch.tensor([prompts.index(p) for p in own])
    top1 = float((sim.argmax(1) == idx).float().mean())
    own_s = float(sim[torch.arange(len(own)), idx].mean())
    mask = torch.ones_like(sim, dtype=torch.bool)
    mask[torch.arange(len(own)), idx] = False
    return top1, own_s, float(sim[mask].mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("generated", help="JSONL written by maa generate (prompt, path)")
    ap.add_argument("--scorer", required=True, help="maa-clap:DIR or laion-clap:CKPT")
    ap.add_argument("--ref", default=None, help="manifest of real clips whose captions include the prompts")
    args = ap.parse_args()

    rows = [json.loads(l) for l in Path(args.generated).read_text().splitlines() if l.strip()]
    prompts = list(dict.fromkeys(r["prompt"] for r in rows))
    scorer = load_scorer(args.scorer)
    gen = retrieval(scorer, [load_audio(r["path"]) for r in rows], [r["prompt"] for r in rows], prompts)
    print(f"# {len(rows)} generated clips, {len(prompts)} prompts, chance top-1 {1 / len(prompts):.3f}")
    print(f"{'audio':<12} {'clips':>5} {'top-1':>6} {'own cos':>8} {'other cos':>9}")
    print(f"{'generated':<12} {len(rows):>5} {gen[0]:>6.3f} {gen[1]:>8.3f} {gen[2]:>9.3f}")
    if args.ref:
        ref = [r for r in read_manifest(args.ref) if r.get("caption") in prompts]
        if ref:
            res = retrieval(scorer, [load_audio(r["audio"], max_seconds=10) for r in ref], [r["caption"] for r in ref],
                            prompts)
            print(f"{'real (ref)':<12} {len(ref):>5} {res[0]:>6.3f} {res[1]:>8.3f} {res[2]:>9.3f}")


if __name__ == "__main__":
    main()
