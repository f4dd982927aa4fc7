# make demo-model: retrain the bundled model from scratch on the demo corpus and package it
# into maa/assets/model (fp16 safetensors + configs). Every stage leaves a stamp, so an
# interrupted run continues at the stage it stopped in (each trainer resumes from its last
# checkpoint). On a GPU: make demo-model DEVICE=cuda. On 2 CPU cores it takes about 2 hours.

DEVICE    ?= cpu
MODEL_RUN ?= runs/demo-model
MELS      := data/demo_mels_full
BUNDLE    := maa/assets/model

.PHONY: demo-model
demo-model: $(MODEL_RUN)/.ldm.done $(MODEL_RUN)/.vocoder.done $(MODEL_RUN)/.clap.done
	$(BIN)/python -m maa.bundle --ldm-run $(MODEL_RUN)/ldm-run --vocoder $(MODEL_RUN)/vocoder-run/vocoder \
	    --clap $(MODEL_RUN)/clap-run/clap -o $(BUNDLE)
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

$(MODEL_RUN)/.ldm.done: $(MODEL_RUN)/.vae.done
	$(MAA) train-ldm $(MELS)/train/manifest.jsonl --val $(MELS)/valid/manifest.jsonl --vae $(MODEL_RUN)/vae-run/vae \
	    -o $(MODEL_RUN)/ldm-run --preset tiny --duration 4 --steps 6000 -b 16 --lr 5e-4 --warmup 100 \
	    --cache-latents --reprogram-prob 0.1 --ckpt-every 500 --val-every 500 --device $(DEVICE) -q \
	    $(if $(wildcard $(MODEL_RUN)/ldm-run/trainer_state.pt),--resume)
	@touch $@

$(MODEL_RUN)/.vocoder.done: | demo-data
	$(MAA) train-vocoder $(DEMO_DATA)/train.jsonl --valid $(DEMO_DATA)/valid.jsonl -o $(MODEL_RUN)/vocoder-run \
	    --preset small --steps 7400 --disc-start 1000000 -b 8 --lr 5e-4 --lr-half-life 1500 --refine 8 \
	    --ckpt-every 200 --val-every 400 --device $(DEVICE)
	@touch $@
