"""maa-clap on the demo corpus's held-out test split: zero-shot accuracy, text->audio retrieval, captioning.

    python benchmarks/bench_clap.py --model runs/clap/clap [--data data/demo]

Figures (test split, clips never seen in training):
  * zero-shot classification: each clip takes the class whose prompt "the sound of X" is
    nearest; right when that is the clip's class (its first label);
  * text->audio retrieval: each test caption ranks the test clips; R@k counts a hit when a clip
    with that caption is in the top k (`strict`: only the clip it came from; `class`: any clip
    of its class; the test split has about 2 clips per class, near-identical renders);
  * captioning with labels and captions hidden: `maa caption`'s retrieval expert over the
    training split's captions; right when the chosen caption belongs to the clip's class.
Baselines measured in the same run: the same architecture with random weights (same frozen
text encoder), and chance.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from maa.core.checkpoint import read_config, save_weights
from maa.data.formats import read_manifest
from maa.data.caption import BankEntry, CaptionJob, caption_rows, label_text
from maa.parts.scorers import MaaClapScorer
from maa.models.clap import ClapConfig, MaaClap
from maa.train.clap import class_names, load_mels, measure


def caption_accuracy(scorer, test_rows, train_rows, top_k=5) -> tuple[float, list[dict]]:
    """Caption the test clips with labels and captions hidden; right when the caption is one of the clip's class."""
    classes_of = defaultdict(set)
    for r in train_rows:
        if r.get("caption") and r.get("labels"):
            classes_of[r["caption"]].add(label_text(r["labels"][0]))
    bank = [BankEntry(c) for c in classes_of]
    hidden = [{k: v for k, v in r.items() if k not in ("labels", "caption")} for r in test_rows]
    out = caption_rows(hidden, scorer, CaptionJob(experts=("retrieval",), bank=bank, top_k=top_k, batch_size=32))
    right = [label_text(r["labels"][0]) in classes_of.get(o.get("caption"), ()) for r, o in zip(test_rows, out)]
    return float(np.mean(right)), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/clap/clap", help="maa-clap model folder")
    ap.add_argument("--data", default="data/demo", help="folder with train.jsonl and test.jsonl")
    ap.add_argument("--split", default="test")
    ap.add_argument("--examples", type=int, default=8, help="captioned examples to print")
    args = ap.parse_args()

    data = Path(args.data)
    train_rows = read_manifest(data / "train.jsonl")
    test_rows = read_manifest(data / f"{args.split}.jsonl")
    classes = class_names(train_rows + test_rows)
    t0 = time.perf_counter()
    trained = MaaClapScorer(args.model)
    mels = load_mels(test_rows)
    print(f"# {len(test_rows)} {args.split} clips, {len(classes)} classes, model {args.model} "
          f"({sum(p.numel() for p in trained.model.parameters()) / 1e6:.2f} M parameters)")

    with tempfile.TemporaryDirectory() as tmp:  # the baseline: same architecture, random weights
        cfg = ClapConfig.from_dict(read_config(trained.dir)["model"])
        torch.manual_seed(0)
        save_weights(Path(tmp) / "clap", {"model": MaaClap(cfg)}, {"kind": "maa-clap", "model": cfg.to_dict()})
        random_init = MaaClapScorer(Path(tmp) / "clap", text_encoder=trained.text_encoder)

        results = {}
        for name, scorer in (("maa-clap (trained)", trained), ("random weights", random_init)):
            t = time.perf_counter()
            m = measure(scorer, test_rows, mels, classes)
            acc, out = caption_accuracy(scorer, test_rows, train_rows)
            m["caption_acc"] = acc
            m["seconds"] = time.perf_counter() - t
            results[name] = (m, out)

    n_caps = len({r["caption"] for r in test_rows})
    same = [sum(1 for x in test_rows if x["caption"] == r["caption"]) for r in test_rows]
    chance = {
        "zero_shot_acc": 1 / len(classes),
        "R@1": float(np.mean([s / len(test_rows) for s in same])),
        "R@5": float(np.mean([1 - np.prod([(len(test_rows) - s - i) / (len(test_rows) - i) for i in range(5)]) for s in same])),
        "caption_acc": None,
    }
    print(f"# {n_caps} distinct test captions; chance R@k computed for random rankings\n")
    cols = ("zero_shot_acc", "R@1", "R@5", "strict_R@1", "strict_R@5", "class_R@1", "class_R@5", "caption_acc")
    print("| scorer | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, (m, _) in results.items():
        print(f"| {name} | " + " | ".join(f"{m[c]:.3f}" for c in cols) + " |")
    print("| chance | " + " | ".join("-" if chance.get(c) is None else f"{chance[c]:.3f}" for c in cols) + " |")
    print(f"\n# wall time {time.perf_counter() - t0:.1f} s (trained model: {results['maa-clap (trained)'][0]['seconds']:.1f} s "
          f"for {len(test_rows)} clips incl. captioning)")

    print(f"\n# captions chosen with labels hidden (first {args.examples}):")
    _, out = results["maa-clap (trained)"]
    for r, o in list(zip(test_rows, out))[:args.examples]:
        print(f"  {r['id']:32s} class={label_text(r['labels'][0]):14s} -> {o.get('caption')!r} ({o.get('caption_score', 0):.3f})")


if __name__ == "__main__":
    main()
