# make demo-model: retrain the bundled model from scratch on the demo corpus and package it
# into maa/assets/model (fp16 safetensors + configs). Every stage leaves a stamp, so an
# interrupted run continues at the stage it stopped in (each trainer resumes from its last
# checkpoint). Meant for a GPU: make demo-model DEVICE=cuda (the two LDM stages and the decoder
# stage took 7.5, 8 and 3.5 minutes on one H100 / H200); on 2 CPU cores they take days.
# The bundled weights were made by the same commands through recipes/gpu_train.sh (an offline
# GPU node fed with `make demo-ldm-cache`), see maa/assets/MODEL_CARD.md.

DEVICE    ?= cpu
MODEL_RUN ?= runs/demo-model
MELS      := data/demo_mels_full
POOL      := data/demo_pool
BUNDLE    := maa/assets/model
# the bundled LDM: ~10 M parameters, 4 s crops, 35 % of examples from 2400 pre-composed mixtures
LDM_ARGS   = $(MELS)/train/manifest.jsonl --val $(MELS)/valid/manifest.jsonl --preset small --channels 80 \
             --duration 4 --lr 2e-4 --warmup 300 --cache-latents --ema 0.999 \
             --reprogram-pool $(POOL)_mels/manifest.jsonl --reprogram-prob 0.35 -q

.PHONY: demo-model
demo-model: $(MODEL_RUN)/.ldm2.done $(MODEL_RUN)/.decoder.done $(MODEL_RUN)/.vocoder.done $(MODEL_RUN)/.clap.done
	$(BIN)/python -m recipes.bundle --ldm-run $(MODEL_RUN)/ldm2-run --vae $(MODEL_RUN)/decoder-run/vae \
	    --vocoder $(MODEL_RUN)/vocoder-run/vocoder --clap $(MODEL_RUN)/clap-run/clap -o $(BUNDLE)
	$(BIN)/python benchmarks/bench_quality.py --model $(BUNDLE) --json $(MODEL_RUN)/quality.json

$(MELS)/.done: | demo-data
	$(MAA) mel $(DEMO_DATA)/train.jsonl -o $(MELS)/train --full -q
	$(MAA) mel $(DEMO_DATA)/valid.jsonl -o $(MELS)/valid --full -q
	@touch $@

$(MODEL_RUN)/.vae.done: $(MELS)/.done
	$(MAA) train-vae $(MELS)/train/manifest.jsonl --val $(MELS)/valid/manifest.jsonl -o $(MODEL_RUN)/vae-run \
	    --preset small --steps 1500 -b 8 --frames 128 --lr 5e-4 --warmup 100 --disc-start 1000 \
	    --ckpt-every 250 --val-every 250 --device $(DEVICE) -q $(if $(wildcard $(MODEL_RUN)/vae-run/trainer_state.pt),--resume)
	@touch $@

$(MODEL_RUN)/.clap.done: | demo-data
	$(MAA) train-clap $(DEMO_DATA)/train.jsonl --val $(DEMO_DATA)/valid.jsonl -o $(MODEL_RUN)/clap-run \
	    --steps 3000 --channels 16,32,64,128 --frames 128 --lr 2e-3 --device $(DEVICE) -q \
	    $(if $(wildcard $(MODEL_RUN)/clap-run/trainer_state.pt),--resume)
	@touch $@

$(POOL)/.done: | demo-data
	$(MAA) reprogram $(DEMO_DATA)/train.jsonl -o $(POOL) --count 2400 --duration 4 --max-events 2 \
	    --p-sequential 0.6 --seed 1 -q
	$(MAA) mel $(POOL)/manifest.jsonl -o $(POOL)_mels --full -q
	@touch $@

$(MODEL_RUN)/.ldm.done: $(MODEL_RUN)/.vae.done $(POOL)/.done
	$(MAA) train-ldm $(LDM_ARGS) --vae $(MODEL_RUN)/vae-run/vae -o $(MODEL_RUN)/ldm-run --steps 3500 -b 128 \
	    --ckpt-every 500 --val-every 500 --device $(DEVICE) $(if $(wildcard $(MODEL_RUN)/ldm-run/trainer_state.pt),--resume)
	@touch $@

# continued from the first stage at batch 256 (the bundled UNet got its position maps here)
$(MODEL_RUN)/.ldm2.done: $(MODEL_RUN)/.ldm.done
	$(MAA) train-ldm $(LDM_ARGS) --vae $(MODEL_RUN)/vae-run/vae -o $(MODEL_RUN)/ldm2-run --init $(MODEL_RUN)/ldm-run \
	    --steps 3300 -b 256 --ckpt-every 500 --val-every 500 --device $(DEVICE) \
	    $(if $(wildcard $(MODEL_RUN)/ldm2-run/trainer_state.pt),--resume)
	@touch $@

# a sharper decoder for the same latents: GAN fine-tuning of the decoder only
$(MODEL_RUN)/.decoder.done: $(MODEL_RUN)/.vae.done
	$(MAA) train-vae $(MELS)/train/manifest.jsonl --val $(MELS)/valid/manifest.jsonl -o $(MODEL_RUN)/decoder-run \
	    --init $(MODEL_RUN)/vae-run/vae --decoder-only --disc-start 0 --frames 128 -b 32 --lr 2e-4 --ema 0.999 \
	    --steps 7000 --ckpt-every 500 --val-every 500 --device $(DEVICE) -q \
	    $(if $(wildcard $(MODEL_RUN)/decoder-run/trainer_state.pt),--resume)
	@touch $@

# for recipes/gpu_train.sh on a GPU node without the text encoder: every caption and clip
# encoded here (CPU, ~1 min) into runs/gpu_ldm/cache/
.PHONY: demo-ldm-cache
demo-ldm-cache: $(MELS)/.done $(POOL)/.done
	$(MAA) train-ldm $(LDM_ARGS) --vae $(BUNDLE)/vae -o runs/gpu_ldm --steps 1 -b 4 --device cpu \
	    $(if $(wildcard runs/gpu_ldm/trainer_state.pt),--resume)

$(MODEL_RUN)/.vocoder.done: | demo-data
	$(MAA) train-vocoder $(DEMO_DATA)/train.jsonl --val $(DEMO_DATA)/valid.jsonl -o $(MODEL_RUN)/vocoder-run \
	    --preset small --steps 7400 --disc-start 1000000 -b 8 --lr 5e-4 --lr-half-life 1500 --refine 8 \
	    --ckpt-every 200 --val-every 400 --device $(DEVICE) $(if $(wildcard $(MODEL_RUN)/vocoder-run/trainer_state.pt),--resume)
	@touch $@
