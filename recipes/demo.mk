# make demo: generate a handful of example prompts with the bundled model (offline, CPU).
DEMO_OUT     := demo_out
DEMO_PROMPTS := recipes/demo_prompts.txt

.PHONY: demo
demo: $(STAMP)
	$(MAA) generate --prompts $(DEMO_PROMPTS) --out-dir $(DEMO_OUT) --duration 4 --seed 0 --png \
	    --manifest $(DEMO_OUT)/generated.jsonl
	@echo ""
	@echo "demo: wrote $$(ls $(DEMO_OUT)/*.wav | wc -l) clips with spectrogram PNGs to $(DEMO_OUT)/ (list: $(DEMO_OUT)/generated.jsonl)"
	@echo "      try: $(MAA) generate \"a dog barks while rain falls\" -o out.wav"
