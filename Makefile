# Each target creates/uses .venv and installs what it needs. TORCH_SPEC picks the torch build
# (default: the CPU wheel torch==2.13.0; e.g. TORCH_SPEC="torch==2.13.0 --index-url ..." for CUDA).
# `make bench` prints the speed figures; `make bench QUALITY=1` adds the shipped model's quality check (long).
# `make demo MODEL=stylegan2-ffhq-256` runs the demo on another generator (passed on as --model; wplus itself reads
# WPLUS_MODEL, not MODEL).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,align,video,ray,web,browser,plot
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: demo test test-browser bench lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "== installing into $(VENV): pip, $(TORCH_SPEC), wplus[$(EXTRAS)] (first run: a few minutes)"
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install --progress-bar off $(TORCH_SPEC)
	$(BIN)/python -m pip install --progress-bar off -e ".[$(EXTRAS)]"
	touch $@
	@echo "== installed; run wplus as $(BIN)/wplus, or after 'source $(BIN)/activate' as wplus"

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m wplus demo --outdir demo_out $(if $(MODEL),--model "$(MODEL)")

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The web UI in a real browser (Debian's chromium: apt-get install chromium; WPLUS_CHROMIUM=PATH for another).
# WPLUS_WEB_SCREENSHOT=docs/web-ui.png also refreshes the README's screenshot.
test-browser: $(STAMP)
	$(BIN)/python -m pytest -q -m browser tests/test_web_browser.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(if $(QUALITY),--quality)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) demo_out bench_out .pytest_cache
