#!/usr/bin/env bash
# Train one stage of the bundled demo model on one GPU inside a fixed time budget.
#
# Why this exists: the bundled model was trained on a rented GPU node with no internet, no
# text-encoder weights and room for ~60 MB of upload. On a normal GPU machine just run
# `make demo-model DEVICE=cuda` instead.
#
#   STAGE=ldm     BUDGET=420 OUTDIR=/tmp/out bash recipes/gpu_train.sh
#   STAGE=ldm     BUDGET=480 INIT=maa/assets/model VAE=runs/gpu_ldm/vae bash recipes/gpu_train.sh
#   STAGE=decoder BUDGET=240 OUTDIR=/tmp/out bash recipes/gpu_train.sh
#
# ldm: `make demo-ldm-cache` first encodes every caption (MiniLM) and every clip and
#   pre-composed reprogramming example (VAE) on the CPU into runs/gpu_ldm/cache/, so
#   `maa train-ldm --cache-latents` trains without reading a mel or loading the text encoder.
#   INIT (a model folder) continues from that LDM (`--init`); CACHE_FROM (a folder) is copied
#   to RUN/cache first; VAE is the VAE the cache was encoded with.
# decoder: fine-tunes the VAE decoder (GAN on from the start) from runs/vae_init/; the encoder,
#   hence the latent space the LDM learned, stays as it is.
#
# Phase 1 runs a few hundred steps and measures the step rate; phase 2 resumes (exactly, from
# the checkpoint) up to as many steps as fit in BUDGET seconds. The exported weights go to
# OUTDIR (float16 halves for the UNet, each under 16 MiB) with the run's configs and metrics.
set -uo pipefail
STAGE=${STAGE:-ldm}
BUDGET=${BUDGET:-420}
OUTDIR=${OUTDIR:-runs/gpu_export}
DEVICE=${DEVICE:-cuda}
T0=$(date +%s)
mkdir -p "$OUTDIR"

if [ -d .whl ]; then  # wheels the node lacks (soundfile, soxr, librosa ...)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} || exit 1
fi
# run from the source tree without installing: maa.commands lives in commands/
[ -e maa/commands ] || ln -s ../commands maa/commands
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
maa() { python3 -c 'from maa.commands.cli import main; main()' "$@"; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

MELS=(data/demo_mels_full/train/manifest.jsonl --val data/demo_mels_full/valid/manifest.jsonl)
if [ "$STAGE" = ldm ]; then
  BATCH=${BATCH:-128} RUN=${RUN:-runs/gpu_ldm} FIRST=${FIRST:-300}
  if [ -n "${CACHE_FROM:-}" ]; then mkdir -p "$RUN/cache" && cp "$CACHE_FROM"/*.safetensors "$RUN/cache/"; fi
  ARGS=(train-ldm "${MELS[@]}" --vae "${VAE:-maa/assets/model/vae}" -o "$RUN" ${INIT:+--init "$INIT"} --preset small --channels 80 --duration 4
        -b "$BATCH" --lr 2e-4 --warmup 300 --cache-latents
        --reprogram-pool data/demo_pool_mels/manifest.jsonl --reprogram-prob 0.35
        --device "$DEVICE" -j 4 --ema 0.999 --ckpt-every 1000 --val-every 1000 --log-every 100 -q)
else
  BATCH=${BATCH:-32} RUN=${RUN:-runs/gpu_vae} FIRST=${FIRST:-200}
  ARGS=(train-vae "${MELS[@]}" -o "$RUN" --init runs/vae_init --decoder-only --disc-start 0 --frames 128
        -b "$BATCH" --lr 2e-4 --device "$DEVICE" -j 4 --ema 0.999 --ckpt-every 1000 --val-every 1000
        --log-every 100 -q)
fi

rm -f "$RUN/trainer_state.pt" "$RUN/metrics.jsonl"
maa "${ARGS[@]}" --steps "$FIRST" || { echo "phase 1 failed with bf16; retrying in float32"; \
  rm -f "$RUN/trainer_state.pt" "$RUN/metrics.jsonl"; maa "${ARGS[@]}" --steps "$FIRST" --no-bf16 || exit 1; BF=--no-bf16; }

# steps per second from the last logged line (excludes start-up), then fill the budget
RATE=$(python3 -c "
import json; rows=[json.loads(l) for l in open('$RUN/metrics.jsonl') if '\"train\"' in l]
print(rows[-1]['samples_per_s'] / $BATCH)")
LEFT=$(( BUDGET - ($(date +%s) - T0) - 25 ))
TOTAL=$(python3 -c "print(max($FIRST, $FIRST + int($RATE * $LEFT * 0.92) // 100 * 100))")
echo "phase 1: $RATE steps/s; $LEFT s left -> $TOTAL steps in all"
maa "${ARGS[@]}" --steps "$TOTAL" --resume ${BF:-}

python3 - "$RUN" "$OUTDIR" "$STAGE" <<'EOF'
import json, shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
run, out, stage = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
folder, weights = ("ldm", "unet") if stage == "ldm" else ("vae", "vae")
w = {k: v.half().contiguous() for k, v in load_file(str(run / folder / f"{weights}.safetensors")).items()}
keys = sorted(w)
half = len(keys) // 2
save_file({k: w[k] for k in keys[:half]}, str(out / f"{weights}_a.safetensors"))
save_file({k: w[k] for k in keys[half:]}, str(out / f"{weights}_b.safetensors"))
for name in (f"{folder}/config.json", "metrics.jsonl", "train_config.json"):
    shutil.copy(run / name, out / Path(name).name)
rows = [json.loads(l) for l in open(run / "metrics.jsonl")]
print("last:", rows[-2:], "exported", len(keys), "tensors")
EOF
echo "total $(( $(date +%s) - T0 )) s"
