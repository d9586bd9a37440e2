# csbench: the two commands a new user needs are `make report` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= reports/quarterly.yaml
export UV_COMPILE_BYTECODE := 1
export MPLBACKEND := Agg
export PYTHONWARNINGS ?= ignore::DeprecationWarning

.PHONY: setup report test test-notebooks test-sync pytest sample lab bench test-spark readme clean browser-deps browser-deps-optional test-browser

setup: $(STAMP)  ## create .venv (uv bootstrapped inside it) and install csbench with the dev extra

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	@touch $(STAMP)

report: $(STAMP)  ## regenerate the quarterly report on data/sample and print the path of index.html
	$(BIN)/csbench report $(CONFIG)

test: $(STAMP) test-sync test-notebooks browser-deps-optional pytest  ## sync check, notebook tests, pytest (browser test included when chromium is there)

test-sync: $(STAMP)  ## csbench/ and README.md must be exactly what the notebooks export
	$(BIN)/nbdev-export
	$(MAKE) --no-print-directory readme
	@if [ -n "$$(git status --porcelain -- csbench README.md docs)" ]; then \
	  echo "csbench/, README.md or docs/ differ from what notebooks/ export; run nbdev-export and make readme, then commit:"; \
	  git status --porcelain -- csbench README.md docs; exit 1; fi

test-notebooks: $(STAMP)  ## run every notebook (report templates included) on the sample book
	$(BIN)/nbdev-test --n-workers 2

pytest: $(STAMP)
	$(BIN)/pytest -q

# Headless Chromium for tests/test_browser.py, from Debian packages (fonts-noto-cjk draws the Japanese pages).
# No browser is downloaded by Python tooling: the test drives /usr/bin/chromium over the DevTools protocol.
BROWSER_PKGS := chromium chromium-driver fonts-noto-cjk
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

browser-deps:  ## install headless Chromium for the browser test (apt-get; needs root or passwordless sudo)
	@if command -v chromium >/dev/null 2>&1; then echo "browser-deps: $$(chromium --version 2>/dev/null) at $$(command -v chromium)"; \
	else command -v apt-get >/dev/null 2>&1 || { echo "browser-deps: no apt-get here; install chromium yourself"; exit 1; }; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $(SUDO) apt-get install -y -q --no-install-recommends $(BROWSER_PKGS) \
	  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $(BROWSER_PKGS); }; fi

browser-deps-optional:  # best effort for `make test`: never fails; without chromium the browser test skips and says why
	@$(MAKE) --no-print-directory browser-deps || echo "make test: could not install chromium; tests/test_browser.py will be skipped"

test-browser: $(STAMP) browser-deps  ## open the quarterly report in headless Chromium; screenshots in benchmarks/out/screenshots/
	$(BIN)/pytest -q -m browser tests/test_browser.py

sample: $(STAMP)  ## regenerate data/sample (identical for the same seed)
	$(BIN)/csbench synth data/sample --accounts 2000 --months 36 --start 2023-01-01 --seed 42 --currency JPY --format csv

lab: $(STAMP)  ## open JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)  ## side-by-side benchmarks (ratios, peak RSS; table in benchmarks/results.md), then the slow scale checks
	@rm -f benchmarks/out/results.jsonl
	$(BIN)/python benchmarks/bench_projection.py
	$(BIN)/python benchmarks/bench_survival.py
	$(BIN)/python benchmarks/report_speed.py --repeat 2 --jobs 1 2
	$(BIN)/python benchmarks/report_scale.py --accounts 2000 20000
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/summary.py
	$(BIN)/pytest -q -m slow

test-spark: $(STAMP)  ## DuckDB and Spark (local[*], Java 17) give identical tables; installs the spark extra
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev,spark]'
	SPARK_LOCAL_IP=127.0.0.1 $(BIN)/pytest -q -m spark tests/

readme: $(STAMP)  ## README.md is generated from notebooks/index.ipynb, docs/TROUBLESHOOTING.md from 70_troubleshooting
	$(BIN)/jupyter nbconvert --to markdown --log-level WARN notebooks/index.ipynb --output-dir . --output README
	$(BIN)/jupyter nbconvert --to markdown --log-level WARN notebooks/70_troubleshooting.ipynb --output-dir docs --output TROUBLESHOOTING

clean:
	rm -rf reports/out _docs .pytest_cache

.PHONY: student
student: $(STAMP)  ## teaching notebooks without solutions or outputs in build/teach-student, for trainers to hand out
	$(BIN)/csbench teach export notebooks/teach build/teach-student
