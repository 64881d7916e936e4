# Two commands do all set-up on a fresh machine:
#   make book   — install, generate the embedded benchmark, execute every notebook (book profile), build _build/html
#   make test   — install, unit tests + notebooks in the ci profile + book build (-W) + nbval reproducibility check
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PYTHONUNBUFFERED := 1
export HF_HUB_OFFLINE := 1

.PHONY: install book notebooks test unit nbval clean benchmark

$(STAMP): pyproject.toml requirements-dev.txt constraints-local.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints-local.txt -r requirements-dev.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

notebooks: install
	$(BIN)/python notebooks/_run.py --profile book --out _executed/book

book: notebooks
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "Book: _build/html/index.html"

unit: install
	$(BIN)/python -m pytest -q -m "not notebooks" tests

# pytest runs the unit tests, then executes every notebook (ci profile) into _executed/ci and builds the book
# from them with warnings as errors; nbval then re-runs those executed notebooks and compares their outputs.
test: install
	$(BIN)/python -m pytest -q tests
	rm -rf _executed/ci-nbval-runs
	RDLIB_RUNS=$(CURDIR)/_executed/ci-nbval-runs $(BIN)/python -m pytest -q -p no:cacheprovider --nbval \
	  --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg _executed/ci/*.ipynb

benchmark: install
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_cosine_map.py

clean:
	rm -rf _build _executed
