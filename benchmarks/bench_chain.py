"""Where does a model folder lose recognisability? The independent judge of bench_quality.py
(aisfx + logistic regression fitted on the real train clips) on the 95 real test clips, 4 s
crops, passed through more and more of the decoding chain:

    real audio | mel -> vocoder | mel -> VAE encode/decode -> vocoder

next to generation from training-style captions of 26 classes. The gap between two rows is
what that stage costs; the VAE row is the ceiling for anything the LDM generates.

    .venv/bin/python benchmarks/bench_chain.py [--model DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from bench_quality import PROMPTS, embed, fit_judge, label, load_wavs, rows_of

from maa.core.audio import fit_length, frames_for_duration, mel_spectrogram, samples_for_frames
from maa.eval.extractors import load_extractor
from maa.infer.pipeline import GenerateOptions, load_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    ap.add_argument("--corpus", type=Path, default=Path("data/demo"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    ex = load_extractor("aisfx")
    train, test = rows_of(a.corpus / "train.jsonl"), rows_of(a.corpus / "test.jsonl")
    classify = fit_judge(ex, train)
    truth = np.array([label(r) for r in test])
    frames = frames_for_duration(4.0)
    wavs = [fit_length(w, samples_for_frames(frames)) for w in load_wavs(test)]
    model = load_model(a.model)

    def accuracy(audio):
        return round(float(np.mean(classify(embed(ex, audio)[0]) == truth)), 3)

    res = {"model": str(model.root), "clips": len(test), "real": accuracy(wavs)}
    with torch.no_grad():
        mels = [mel_spectrogram(torch.from_numpy(w))[None, :, :frames] for w in wavs]
        res["mel_vocoder"] = accuracy([model.vocoder(m).float().numpy()[0] for m in mels])
        rec = [model.vae.decode_latent(model.vae.encode_mel(m), frames=frames).float() for m in mels]
        res["mel_vae_vocoder"] = accuracy([model.vocoder(m).float().numpy()[0] for m in rec])
    captions: dict[str, str] = {}
    for r in train:
        captions.setdefault(label(r), r["caption"])
    classes = list(PROMPTS)
    gen = model([captions[c] for c in classes], list(range(len(classes))), opts=GenerateOptions(duration=4.0))
    res["generated_train_captions"] = round(float(np.mean(classify(embed(ex, [g.audio for g in gen])[0])
                                                          == np.array(classes))), 3)
    print(json.dumps(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
