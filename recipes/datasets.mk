# Paper-scale chain: AudioCaps / Clotho / WavCaps / label-only sets -> an evaluated model.
#
#   make model DATA="audiocaps clotho wavcaps esc50" ROOT=/data RUN=runs/paper PRESET=base GPUS=8
#   make -n model ...          # print the plan
#   make stage-vae RUN=...     # one stage (and whatever it needs that is not done yet)
#
# Stages (each leaves RUN/.<stage>.done; a rerun skips finished stages, and an interrupted one
# continues: `maa mel` and `maa caption` skip finished clips, the trainers get --resume when
# RUN/<stage>-run/trainer_state.pt exists):
#   import    recipes.datasets import: ROOT/<set>/ -> RUN/data/{train,val,test-*,events}.jsonl + summary.json
#   mel       maa mel --shard I/N, one process per GPU (GPUS=0: MEL_SHARDS CPU processes) -> RUN/mels.jsonl
#   caption   maa caption (labels + retrieval from the captioned clips, scored by SCORER) -> RUN/train.jsonl
#   pool      maa reprogram + maa mel: the dynamic-reprogramming pool (RUN/pool_mels)
#   vae       maa train-vae --preset PRESET
#   clap      maa train-clap (skipped when CLAP=laion-clap:CKPT or maa-clap:DIR is given)
#   ldm       maa train-ldm --preset PRESET (torchrun, bf16 on CUDA)
#   vocoder   maa train-vocoder (skipped when BIGVGAN=DIR, the official 16 kHz BigVGAN folder, is given)
#   bundle    recipes.bundle -> RUN/model (vae/ ldm/ vocoder/ clap/)
#   generate  maa generate --prompts RUN/data/test-$(EVAL_SET).jsonl (one prompt per clip, 10 s)
#   eval      maa eval --protocol make-an-audio -> RUN/metrics.json (eval card inside)
# Several machines: NNODES=2 NODE_RANK=0|1 RDZV=host:29500 on each node (torchrun rendezvous), or
# the SLURM examples in recipes/slurm/. Data-set layouts: README, "Train on AudioCaps / Clotho / WavCaps".

DATA      ?= audiocaps clotho wavcaps
ROOT      ?= data/sets
RUN       ?= runs/paper
PRESET    ?= base
GPUS      ?= 0
NNODES    ?= 1
NODE_RANK ?= 0
RDZV      ?=
CLAP      ?=
BIGVGAN   ?=
SCORER    ?= $(CLAP)
EVAL_SET  ?= audiocaps
MOCK_ROOT ?= data/mock
VAE_STEPS ?= 100000
VAE_BATCH ?= 4
CLAP_STEPS ?= 20000
CLAP_BATCH ?= 64
LDM_STEPS ?= 200000
LDM_BATCH ?= 4
VOC_STEPS ?= 200000
VOC_BATCH ?= 16
VOC_PRESET ?= small
POOL_COUNT ?= 20000
POOL_SECONDS ?= 10
REPROGRAM_PROB ?= 0.3
GEN_STEPS ?= 100
MEL_ARGS  ?=
VAE_ARGS  ?=
CLAP_ARGS ?=
LDM_ARGS_EXTRA ?=
VOC_ARGS  ?=

# make splits file names at spaces: a RUN or ROOT with one would fail later as a bare "Error 2"
$(foreach v,RUN ROOT MOCK_ROOT,$(if $(filter-out 1,$(words $($(v)))),$(error $(v)='$($(v))': make cannot use a path with spaces (or an empty one); choose one without, e.g. $(v)=runs/paper)))
GEN_ARGS  ?= --sampler plms
EVAL_ARGS ?=

# mel shards: one per GPU (on the CPU, MEL_SHARDS parallel processes)
MEL_SHARDS ?= $(if $(filter 0,$(GPUS)),1,$(GPUS))
P_SHARDS := $(MEL_SHARDS)
P_DEVICE := $(if $(filter 0,$(GPUS)),cpu,cuda)
P_QUIET  := -q
# torchrun for every trainer when there are GPUs: one process per GPU, rendezvous across nodes
P_TRAIN  := $(if $(filter 0,$(GPUS)),$(MAA),$(BIN)/torchrun --nnodes $(NNODES) --nproc-per-node $(GPUS) \
            $(if $(RDZV),--node-rank $(NODE_RANK) --rdzv-backend c10d --rdzv-endpoint $(RDZV) --rdzv-id $(notdir $(RUN)),--standalone) $(MAA))
P_RESUME  = $(if $(wildcard $(RUN)/$(1)/trainer_state.pt),--resume)
P_CLAP   := $(or $(CLAP),maa-clap:$(RUN)/clap-run/clap)
P_VENV   := $(if $(wildcard $(STAMP)),,$(STAMP))
P_STAGES := import mel caption pool vae clap ldm vocoder bundle generate eval

.PHONY: model mock-datasets $(addprefix stage-,$(P_STAGES)) $(addprefix import-,audiocaps clotho wavcaps audioset fsd50k esc50 urbansound8k)

model: $(RUN)/metrics.json
	@$(BIN)/python -c "import json,sys; m=json.load(open('$<')); c=m['eval_card']; \
	  print('model:', '$(RUN)/model', '| eval:', ', '.join(f'{b}.{k}={v:.3f}' for b,x in m['extractors'].items() \
	  for k,v in x.items() if k in ('fd','fad','kl','is','clap_score')), '| clips', c['clips']['generated'])"

stage-import: $(RUN)/.import.done
stage-mel: $(RUN)/.mel.done
stage-caption: $(RUN)/.caption.done
stage-pool: $(RUN)/.pool.done
stage-vae: $(RUN)/.vae.done
stage-clap: $(RUN)/.clap.done
stage-ldm: $(RUN)/.ldm.done
stage-vocoder: $(RUN)/.vocoder.done
stage-bundle: $(RUN)/.bundle.done
stage-generate: $(RUN)/.generate.done
stage-eval: $(RUN)/metrics.json

# one data set on its own: ROOT/<set>/ -> RUN/data-<set>/ (layouts in maa/data/importers.py)
import-%: $(P_VENV)
	$(BIN)/python -m recipes.datasets import $* --root $(ROOT) -o $(RUN)/data-$*

mock-datasets: $(P_VENV)
	$(BIN)/python -m recipes.mock_datasets $(MOCK_ROOT)

$(RUN)/.import.done: $(P_VENV)
	@mkdir -p $(RUN)
	$(BIN)/python -m recipes.datasets import $(DATA) --root $(ROOT) -o $(RUN)/data
	@touch $@

# one `maa mel` per GPU (or one CPU process); each skips the clips it already wrote
$(RUN)/.mel.done: $(RUN)/.import.done
	@set -e; pids=""; for i in $$(seq 0 $$(($(P_SHARDS) - 1))); do \
	  $(MAA) mel $(RUN)/data/train.jsonl -o $(RUN)/mels --shard $$i/$(P_SHARDS) \
	    --device $(if $(filter cpu,$(P_DEVICE)),cpu,cuda:$$i) $(MEL_ARGS) $(P_QUIET) & pids="$$pids $$!"; done; \
	  for p in $$pids; do wait $$p; done
	$(BIN)/python -m recipes.datasets merge \
	  $(if $(filter 1,$(P_SHARDS)),$(RUN)/mels/manifest.jsonl,$(foreach i,$(shell seq 0 $$(($(P_SHARDS) - 1))),$(RUN)/mels/manifest-$(i)-of-$(P_SHARDS).jsonl)) \
	  -o $(RUN)/mels.jsonl
	$(MAA) mel $(RUN)/data/val.jsonl -o $(RUN)/val_mels --device $(P_DEVICE) $(MEL_ARGS) $(P_QUIET)
	@touch $@

# label-only clips get a caption (labels and retrieved captions, best by audio-text score);
# then every caption of a clip becomes its own training row
$(RUN)/.caption.done: $(RUN)/.mel.done
	$(MAA) caption $(RUN)/mels.jsonl -o $(RUN)/captioned.jsonl --experts labels,retrieval --bank $(RUN)/data/train.jsonl \
	  $(if $(SCORER),--scorer $(SCORER)) --device $(P_DEVICE) $(P_QUIET)
	$(BIN)/python -m recipes.datasets expand $(RUN)/captioned.jsonl --need-mel -o $(RUN)/train.jsonl
	$(BIN)/python -m recipes.datasets expand $(RUN)/val_mels/manifest.jsonl --need-mel -o $(RUN)/val.jsonl
	@touch $@

# the reprogramming pool: compositions of the single-event (label-only) clips, else of all clips
$(RUN)/.pool.done: $(RUN)/.caption.done
	$(MAA) reprogram $$(if [ -s $(RUN)/data/events.jsonl ]; then echo $(RUN)/data/events.jsonl; else echo $(RUN)/train.jsonl; fi) \
	  -o $(RUN)/pool --count $(POOL_COUNT) --duration $(POOL_SECONDS) --seed 1 $(P_QUIET)
	$(MAA) mel $(RUN)/pool/manifest.jsonl -o $(RUN)/pool_mels --device $(P_DEVICE) $(MEL_ARGS) $(P_QUIET)
	@touch $@

$(RUN)/.vae.done: $(RUN)/.mel.done
	$(P_TRAIN) train-vae $(RUN)/mels.jsonl --val $(RUN)/val_mels/manifest.jsonl -o $(RUN)/vae-run --preset $(PRESET) \
	  --steps $(VAE_STEPS) -b $(VAE_BATCH) --device $(P_DEVICE) $(VAE_ARGS) $(P_QUIET) $(call P_RESUME,vae-run)
	@touch $@

$(RUN)/.clap.done: $(RUN)/.caption.done
ifeq ($(CLAP),)
	$(P_TRAIN) train-clap $(RUN)/train.jsonl --val $(RUN)/val.jsonl -o $(RUN)/clap-run --steps $(CLAP_STEPS) \
	  -b $(CLAP_BATCH) --device $(P_DEVICE) $(CLAP_ARGS) $(P_QUIET) $(call P_RESUME,clap-run)
else
	@echo "clap: using $(CLAP) (no train-clap)"
endif
	@touch $@

$(RUN)/.ldm.done: $(RUN)/.vae.done $(RUN)/.pool.done
	$(P_TRAIN) train-ldm $(RUN)/train.jsonl --val $(RUN)/val.jsonl --vae $(RUN)/vae-run/vae -o $(RUN)/ldm-run \
	  --preset $(PRESET) --steps $(LDM_STEPS) -b $(LDM_BATCH) --reprogram-pool $(RUN)/pool_mels/manifest.jsonl \
	  --reprogram-prob $(REPROGRAM_PROB) --device $(P_DEVICE) $(LDM_ARGS_EXTRA) $(P_QUIET) $(call P_RESUME,ldm-run)
	@touch $@

$(RUN)/.vocoder.done: $(RUN)/.import.done
ifeq ($(BIGVGAN),)
	$(P_TRAIN) train-vocoder $(RUN)/data/train.jsonl --val $(RUN)/data/val.jsonl -o $(RUN)/vocoder-run \
	  --preset $(VOC_PRESET) --steps $(VOC_STEPS) -b $(VOC_BATCH) --device $(P_DEVICE) $(VOC_ARGS) $(P_QUIET) \
	  $(call P_RESUME,vocoder-run)
else
	@echo "vocoder: using the BigVGAN folder $(BIGVGAN) (no train-vocoder)"
endif
	@touch $@

$(RUN)/.bundle.done: $(RUN)/.ldm.done $(RUN)/.vocoder.done $(RUN)/.clap.done
	$(BIN)/python -m recipes.bundle --ldm-run $(RUN)/ldm-run -o $(RUN)/model --budget-mb 100000 \
	  $(if $(BIGVGAN),,--vocoder $(RUN)/vocoder-run/vocoder) $(if $(CLAP),,--clap $(RUN)/clap-run/clap)
	$(if $(BIGVGAN),rm -rf $(RUN)/model/vocoder && cp -r $(BIGVGAN) $(RUN)/model/vocoder)
	@touch $@

$(RUN)/.generate.done: $(RUN)/.bundle.done
	$(MAA) generate --prompts $(RUN)/data/test-$(EVAL_SET).jsonl --model $(RUN)/model --out-dir $(RUN)/gen --duration 10 \
	  --steps $(GEN_STEPS) --device $(P_DEVICE) --manifest $(RUN)/gen/generated.jsonl $(GEN_ARGS) $(P_QUIET)
	@touch $@

$(RUN)/metrics.json: $(RUN)/.generate.done
	$(BIN)/python -m recipes.datasets pair $(RUN)/gen/generated.jsonl $(RUN)/data/test-$(EVAL_SET).jsonl -o $(RUN)/gen.jsonl
	$(MAA) eval $(RUN)/gen.jsonl $(RUN)/data/test-$(EVAL_SET).jsonl --protocol make-an-audio -e $(P_CLAP) \
	  --device $(P_DEVICE) -o $@ $(EVAL_ARGS) $(P_QUIET)
