# Two commands do all set-up on a fresh machine:
#   make book   — install, generate the embedded benchmark, execute every notebook (book profile), build _build/html
#                 (`make book BOOK_PROFILE=full` on a GPU: the same chapters at 256² with the longer schedules)
#   make test   — install, unit tests + notebooks in the ci profile + book build (-W) + the book in headless Chromium
#                 (desktop and phone widths, screenshots in _build/screenshots/) + nbval reproducibility check
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PYTHONUNBUFFERED := 1
export HF_HUB_OFFLINE := 1
BOOK_PROFILE ?= book

.PHONY: install book notebooks test unit smoke nbval clean benchmark

# Texture packages for anomaly synthesis when no DTD folder is given ($$RDLIB_DTD): Debian's gimp-data patterns,
# tuxpaint-data templates and mypaint-data-extras backgrounds (~25 MB). Installed where apt-get runs as root; elsewhere
# synthesis falls back to bundled images, and every run records which source it used.
TEXTURE_PKGS := gimp-data tuxpaint-data mypaint-data-extras
TEXTURE_STAMP := $(VENV)/.textures-stamp

$(STAMP): pyproject.toml requirements-dev.txt constraints-local.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints-local.txt -r requirements-dev.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

$(TEXTURE_STAMP): | $(STAMP)
	@if [ -d /usr/share/gimp/2.0/patterns ] && [ -d /usr/share/tuxpaint/templates ] && [ -d /usr/share/mypaint/backgrounds ]; then \
	  echo "texture packages: present"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEXTURE_PKGS) >/dev/null) \
	    && echo "texture packages: installed ($(TEXTURE_PKGS))" \
	    || echo "texture packages: apt-get failed; synthesis falls back to bundled images (runs record the source)"; \
	else \
	  echo "texture packages: not installed (needs apt-get as root); synthesis falls back to bundled images (runs record the source)"; \
	fi
	@touch $@

# Debian's Chromium for the book's browser test (tests/browser_check.py, driven by Playwright from PyPI; Playwright's
# own browser download cannot work offline). Installed where apt-get runs as root; elsewhere that test skips loudly.
BROWSER_STAMP := $(VENV)/.browser-stamp

$(BROWSER_STAMP): | $(STAMP)
	@if command -v chromium >/dev/null 2>&1; then \
	  echo "chromium: present ($$(command -v chromium))"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
	   || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null)) \
	    && echo "chromium: installed" || echo "chromium: apt-get failed; the browser test will skip"; \
	else \
	  echo "chromium: not installed (needs apt-get as root); the browser test will skip"; \
	fi
	@if command -v chromium >/dev/null 2>&1; then touch $@; fi

# MathJax served with the book, so that its equations typeset offline (from npm's registry; one 2.3 MB file with every
# TeX extension and SVG output, so nothing is loaded later). Without npm the book falls back to MathJax's CDN
# (book/_ext/rdlib_book.py), and the browser test reports equations left as raw TeX.
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_static/mathjax/tex-svg-full.js

$(MATHJAX):
	@mkdir -p $(@D)
	@if command -v npm >/dev/null 2>&1 && (cd $(@D) && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null 2>&1) \
	  && tar -xzf $(@D)/mathjax-$(MATHJAX_VERSION).tgz -C $(@D) package/es5/tex-svg-full.js package/LICENSE; then \
	  mv $(@D)/package/es5/tex-svg-full.js $@ && mv $(@D)/package/LICENSE $(@D)/LICENSE \
	    && rm -rf $(@D)/package $(@D)/mathjax-$(MATHJAX_VERSION).tgz && echo "mathjax: $(MATHJAX_VERSION) from npm, served with the book"; \
	else \
	  rm -rf $(@D)/package $(@D)/mathjax-*.tgz; echo "mathjax: npm unavailable; the book's equations load MathJax from its CDN"; \
	fi

install: $(STAMP) $(TEXTURE_STAMP) $(MATHJAX)


notebooks: install
	$(BIN)/python notebooks/_run.py --profile $(BOOK_PROFILE) --out _executed/book

book: notebooks
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "Book: _build/html/index.html"

unit: install
	$(BIN)/python -m pytest -q -m "not notebooks" tests

# The smoke runs alone (RDLIB_SMOKE=1, tests/test_smoke.py; make test runs them too): every chapter with `paper` on
# a generated MVTec AD tree and with `full` on the embedded benchmark, the RD chapter on VisA, BTAD and MPDD trees
smoke: install
	$(BIN)/python -m pytest -q tests/test_smoke.py

# pytest runs the unit tests, then executes every notebook (ci profile) into _executed/ci and builds the book
# from them with warnings as errors; nbval then re-runs those executed notebooks and compares their outputs.
test: install $(BROWSER_STAMP)
	$(BIN)/python -m pytest -q --durations=25 tests
	rm -rf _executed/ci-nbval-runs
	RDLIB_RUNS=$(CURDIR)/_executed/ci-nbval-runs $(BIN)/python -m pytest -q -p no:cacheprovider --nbval \
	  --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg _executed/ci/*.ipynb

benchmark: install
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_cosine_map.py

clean:
	rm -rf _build _executed
