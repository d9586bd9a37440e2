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

.PHONY: setup report test test-notebooks test-sync pytest sample lab bench test-spark readme clean

setup: $(STAMP)  ## create .venv (uv bootstrapped inside it) and install csbench with the dev extra

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	@touch $(STAMP)

report: $(STAMP)  ## regenerate the quarterly report on data/sample and print the path of index.html
	$(BIN)/csbench report $(CONFIG)

test: $(STAMP) test-sync test-notebooks pytest  ## sync check, notebook tests, pytest

test-sync: $(STAMP)  ## csbench/ and README.md must be exactly what the notebooks export
	$(BIN)/nbdev-export
	$(MAKE) --no-print-directory readme
	@if [ -n "$$(git status --porcelain -- csbench README.md)" ]; then \
	  echo "csbench/ or README.md differ from what notebooks/ export; run nbdev-export and make readme, then commit:"; \
	  git status --porcelain -- csbench README.md; exit 1; fi

test-notebooks: $(STAMP)  ## run every notebook (report templates included) on the sample book
	$(BIN)/nbdev-test --n-workers 2

pytest: $(STAMP)
	$(BIN)/pytest -q

sample: $(STAMP)  ## regenerate data/sample (identical for the same seed)
	$(BIN)/csbench synth data/sample --accounts 2000 --months 36 --start 2023-01-01 --seed 42 --currency JPY --format csv

lab: $(STAMP)  ## open JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)  ## slow scale checks and side-by-side benchmarks
	$(BIN)/pytest -q -m slow
	@for f in benchmarks/*.py; do [ -e "$$f" ] && $(BIN)/python "$$f"; done; true

test-spark: $(STAMP)
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev,spark]'
	SPARK_LOCAL_IP=127.0.0.1 $(BIN)/pytest -q -m spark

readme: $(STAMP)  ## README.md is generated from notebooks/index.ipynb
	$(BIN)/jupyter nbconvert --to markdown --log-level WARN notebooks/index.ipynb --output-dir . --output README

clean:
	rm -rf reports/out _docs .pytest_cache
