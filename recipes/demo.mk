# The demo: until `maa generate` and the bundled model exist, it computes mels of a generated example.
DEMO_OUT := demo_out

.PHONY: demo
demo: $(STAMP)
	@mkdir -p $(DEMO_OUT)/clips
	$(BIN)/python -c "import numpy as np; from maa.audio import save_wav; t=np.arange(32000)/16000; save_wav('$(DEMO_OUT)/clips/chirp.wav', 0.5*np.sin(2*np.pi*(200+400*t)*t))"
	$(MAA) mel $(DEMO_OUT)/clips -o $(DEMO_OUT)/mels --duration 2
	@echo "demo: wrote $(DEMO_OUT)/mels/manifest.jsonl (maa generate is not built yet, so the demo runs maa mel)"
