"""Package trained components into one generation model folder (the bundled model).

    python -m recipes.bundle --ldm-run RUN --vocoder RUN_VOC/vocoder --clap RUN_CLAP/clap -o maa/assets/model

Copies only what inference needs (no discriminators, no optimizer state), casts weights to
float16 (loaders cast back to the model's dtype), and checks the total against a size budget.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from maa.core.errors import MaaError
from maa.core.io import atomic_path, write_json_atomic

# (subfolder, weight files inference needs)
PARTS = {"vae": ["vae.safetensors"], "ldm": ["unet.safetensors"], "vocoder": ["generator.safetensors"],
         "clap": ["model.safetensors"]}


def to_fp16(src: Path, dst: Path) -> int:
    """Copy a safetensors file with its floating tensors in float16; returns the bytes written."""
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(src)).items()}
    with atomic_path(dst, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp))
    return dst.stat().st_size


def check_same_encoder(trained_on: Path, shipped: Path, tol: float = 1e-2) -> None:
    """The LDM only understands the latents of the encoder it was trained with: a replacement VAE
    may change its decoder, never its encoder (float16 rounding allowed)."""
    a, b = (load_file(str(Path(d) / "vae.safetensors")) for d in (trained_on, shipped))
    for k, v in a.items():
        if k.startswith("encoder.") and (k not in b or v.shape != b[k].shape
                                         or (v.float() - b[k].float()).abs().max() > tol * (1 + v.float().abs().max())):
            raise MaaError(f"{shipped}: its encoder differs from {trained_on}'s ({k}), whose latents the LDM learned; "
                           "fine-tune with `maa train-vae --init ... --decoder-only`")


def package(sources: dict[str, Path], out: Path, budget_mb: float = 40.0) -> dict[str, int]:
    """Write out/<part>/config.json + fp16 weights for each part; return bytes per file."""
    sizes: dict[str, int] = {}
    staging = out.with_name(out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    for part, src in sources.items():
        src = Path(src)
        if not (src / "config.json").exists():
            raise MaaError(f"{src}: no config.json; pass the {part}/ folder a `maa train-*` command wrote")
        (staging / part).mkdir(parents=True)
        write_json_atomic(staging / part / "config.json", json.loads((src / "config.json").read_text()))
        for name in PARTS[part]:
            if not (src / name).exists():
                raise MaaError(f"{src / name}: missing; is {src} a finished {part} folder?")
            sizes[f"{part}/{name}"] = to_fp16(src / name, staging / part / name)
    total = sum(sizes.values()) / 2**20
    if total > budget_mb:
        shutil.rmtree(staging)
        raise MaaError(f"bundle would be {total:.1f} MB, over the {budget_mb:g} MB budget; use smaller presets")
    # swap in whole: a reader never sees half an old and half a new model
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return sizes


def main(argv=None):
    """`python -m recipes.bundle`: a trained run -> the bundled model folder."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ldm-run", required=True, type=Path, help="RUN of `maa train-ldm` (holds ldm/ and vae/)")
    ap.add_argument("--vae", type=Path, help="vae/ folder to ship instead of RUN/vae: a decoder fine-tuned with "
                    "`maa train-vae --init RUN/vae --decoder-only` (its encoder must be RUN/vae's)")
    ap.add_argument("--vocoder", type=Path, help="vocoder/ folder of `maa train-vocoder` (else Griffin-Lim)")
    ap.add_argument("--clap", type=Path, help="clap/ folder of `maa train-clap` (re-ranking for -n)")
    ap.add_argument("-o", "--out", type=Path, default=Path(__file__).resolve().parents[1] / "maa" / "assets" / "model")
    ap.add_argument("--budget-mb", type=float, default=40.0)
    a = ap.parse_args(argv)
    sources = {"vae": a.vae or a.ldm_run / "vae", "ldm": a.ldm_run / "ldm"}
    if a.vocoder:
        sources["vocoder"] = a.vocoder
    if a.clap:
        sources["clap"] = a.clap
    try:
        if a.vae:
            check_same_encoder(a.ldm_run / "vae", a.vae)
        sizes = package(sources, a.out, a.budget_mb)
    except MaaError as e:
        raise SystemExit(f"error: {e}")
    for k, v in sizes.items():
        print(f"{k:32s} {v / 2**20:6.2f} MB")
    print(f"{'total':32s} {sum(sizes.values()) / 2**20:6.2f} MB -> {a.out}")


if __name__ == "__main__":
    main()

