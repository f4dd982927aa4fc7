# make finetune FOLDER=my_sounds/ [MODEL=maa/assets/model] [RUN=runs/finetune]: a LoRA adapter from a folder of clips.
# (LORA_RANK, not RANK: make exports command-line variables, and RANK is torchrun's process rank.)
# Sub-folder names are the clips' labels and captions; clips without text are captioned (`maa caption`: label phrasings,
# else retrieval from a caption bank, ranked by the audio-text model). A few clips are held out; the adapter
# trains on the rest; the held-out captions are generated before and after and scored against the held-out
# recordings (`maa eval`: FD on aisfx embeddings, audio-text score). Every stage leaves a file, so an
# interrupted run continues at the stage it stopped in (training resumes from its checkpoint).
# Without FOLDER: the example, real recordings from Debian's minetest-data (footsteps, digging, carts, ...).
# Defaults fit a CPU and ~50-100 clips (rank 4, 100 steps of batch 4: benchmarks/bench_finetune.py, README);
# about 1-2 min on 2 idle cores, 10x that on busy ones (FT_DUR=2 halves it); on a GPU raise STEPS and BATCH and pass DEVICE=cuda.

FT_FOLDER  = $(if $(FOLDER),$(FOLDER),data/minetest)
FT_MODEL   = $(if $(MODEL),$(MODEL),maa/assets/model)
FT_RUN     = $(if $(RUN),$(RUN),runs/finetune)
LORA_RANK ?= 4
STEPS     ?= 100
BATCH     ?= 4
LR        ?= 1e-3
FT_DUR    ?= 4
HOLDOUT   ?= 0.1
FT_DEVICE ?= $(if $(DEVICE),$(DEVICE),auto)
FT_BANK   ?= recipes/caption_bank.txt
FT_SCORER  = $(if $(wildcard $(FT_MODEL)/clap/config.json),--scorer maa-clap:$(FT_MODEL)/clap,)
FT_CLAP    = $(if $(wildcard $(FT_MODEL)/clap/config.json),$(FT_MODEL)/clap,maa/assets/model/clap)
FT_EVAL    = -e aisfx -e maa-clap:$(FT_CLAP) -d $(FT_DUR) --no-spectral -q

.PHONY: finetune finetune-data
finetune: $(FT_RUN)/CARD.md
	@echo "finetune: adapter $(FT_RUN)/adapter, card $(FT_RUN)/CARD.md; try:"
	@echo "  $(MAA) generate \"footsteps on gravel\" -o out.wav --model $(FT_MODEL) --lora $(FT_RUN)/adapter"

# the example folder: installs minetest-data like make demo-data installs its packages
data/minetest/.done: $(STAMP)
	@dpkg-query -W -f='$${Status}' minetest-data 2>/dev/null | grep -q "ok installed" || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; \
	  else echo "finetune: install the example's sounds first: sudo apt-get install -y minetest-data (or pass FOLDER=...)"; exit 1; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends minetest-data; }
	$(BIN)/python -m recipes.finetune minetest data/minetest
	@touch $@

finetune-data: $(if $(FOLDER),,data/minetest/.done)

$(FT_RUN)/data/clips.jsonl: | $(STAMP) $(if $(FOLDER),,data/minetest/.done)
	$(BIN)/python -m recipes.finetune import $(FT_FOLDER) -o $@

$(FT_RUN)/data/captioned.jsonl: $(FT_RUN)/data/clips.jsonl
	$(MAA) caption $< -o $@ $(FT_SCORER) --experts labels,retrieval --bank $(FT_BANK) --device $(FT_DEVICE) -q

$(FT_RUN)/data/heldout.jsonl: $(FT_RUN)/data/captioned.jsonl
	$(BIN)/python -m recipes.finetune split $< -o $(FT_RUN)/data --holdout $(HOLDOUT)

$(FT_RUN)/mels/.done: $(FT_RUN)/data/heldout.jsonl
	$(MAA) mel $(FT_RUN)/data/train.jsonl -o $(FT_RUN)/mels --full -q
	@touch $@

$(FT_RUN)/adapter/final.json: $(FT_RUN)/mels/.done
	@mkdir -p $(@D)
	$(MAA) train-ldm $(FT_RUN)/mels/manifest.jsonl --init $(FT_MODEL) -o $(FT_RUN)/adapter --lora $(LORA_RANK) \
	    --steps $(STEPS) -b $(BATCH) --lr $(LR) --ema 0 --duration $(FT_DUR) --cache-latents --val-fraction 0 \
	    --ckpt-every 50 --log-every 10 --device $(FT_DEVICE) -q \
	    $(if $(wildcard $(FT_RUN)/adapter/trainer_state.pt),--resume) > $@.tmp && mv $@.tmp $@

$(FT_RUN)/eval/prompts.txt: $(FT_RUN)/data/heldout.jsonl
	$(BIN)/python -m recipes.finetune prompts $< -o $@

$(FT_RUN)/eval/before.jsonl: $(FT_RUN)/eval/prompts.txt
	$(MAA) generate --prompts $< --out-dir $(FT_RUN)/eval/before --model $(FT_MODEL) -d $(FT_DUR) --seed 0 \
	    --device $(FT_DEVICE) -q --manifest $@.part && mv $@.part $@

$(FT_RUN)/eval/after.jsonl: $(FT_RUN)/eval/prompts.txt $(FT_RUN)/adapter/final.json
	$(MAA) generate --prompts $< --out-dir $(FT_RUN)/eval/after --model $(FT_MODEL) --lora $(FT_RUN)/adapter \
	    -d $(FT_DUR) --seed 0 --device $(FT_DEVICE) -q --manifest $@.part && mv $@.part $@

$(FT_RUN)/eval/%.metrics.json: $(FT_RUN)/eval/%.jsonl
	$(MAA) eval $(FT_RUN)/eval/$* $(FT_RUN)/data/heldout.jsonl $(FT_EVAL) -o $@

$(FT_RUN)/CARD.md: $(FT_RUN)/eval/before.metrics.json $(FT_RUN)/eval/after.metrics.json
	$(BIN)/python -m recipes.finetune card $(FT_RUN) > $(FT_RUN)/card.line
