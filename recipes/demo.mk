# make demo: generate a handful of example prompts with the bundled model (offline, CPU).
DEMO_OUT     := demo_out
DEMO_PROMPTS := recipes/demo_prompts.txt

.PHONY: demo
demo: $(STAMP)
	$(MAA) generate --prompts $(DEMO_PROMPTS) --out-dir $(DEMO_OUT) --duration 4 --seed 0 --png \
	    --manifest $(DEMO_OUT)/generated.jsonl
	$(MAA) generate "a door slams" --init-audio $(DEMO_OUT)/rain.wav --inpaint 1.5-2.5 -o $(DEMO_OUT)/rain_door_inpainted.wav \
	    --seed 0 --png -q >> $(DEMO_OUT)/generated.jsonl
	$(MAA) generate --timeline "0-3: a dog barks; 2.5-6: a siren wails; 7-10: a bell rings" --background "rain falls" \
	    -o $(DEMO_OUT)/timeline.wav --seed 0 --png -q >> $(DEMO_OUT)/generated.jsonl
	$(MAA) generate "heavy rain is falling" --duration 60 --steps 10 -o $(DEMO_OUT)/rain_60s.wav --seed 0 --png -q \
	    >> $(DEMO_OUT)/generated.jsonl
	$(MAA) generate "an engine idles" --duration 8 --loop -o $(DEMO_OUT)/engine_loop.wav --seed 0 --png -q \
	    >> $(DEMO_OUT)/generated.jsonl
	@echo ""
	@echo "demo: wrote $$(ls $(DEMO_OUT)/*.wav | wc -l) clips with spectrogram PNGs to $(DEMO_OUT)/ (list: $(DEMO_OUT)/generated.jsonl)"
	@echo "      try: $(MAA) generate \"a dog barks while rain falls\" -o out.wav"
