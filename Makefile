# The two commands of the README. A fresh machine needs only Python 3.11 with pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/config.yaml

.PHONY: install run test bench lint dryrun clean verify

# Reinstall only when pyproject.toml changed: the stamp is newer than it otherwise.
# pip byte-compiles the ~17,000 installed modules one by one (~100 s of CPU, a third of the install), and
# `compileall -j 0` of them all (packages' test suites excepted) still took 30-38 s on 2 cores. The jobs import
# ~6,400 of them (the .pyc files a tiny run wrote in a venv that had none), so the install imports what the jobs
# import instead, TensorFlow's side and the rest in two processes, which writes their .pyc: 18-20 s on 2 cores,
# 6,100 of the 6,400. A module a job reaches that these imports do not is compiled once, by its first import.
# Bytecode is written even where the user's shell sets PYTHONDONTWRITEBYTECODE (compileall did so too).
# TensorFlow's start-up lines (no CUDA driver, ...) go to .venv/warm_imports.log, shown if an import fails.
WARM_IMPORTS_TF    := tensorflow, keras, tf2onnx.convert, onnx, onnxruntime
WARM_IMPORTS_OTHER := torch, torch._dynamo, torch.onnx, zuko, sklearn.ensemble, scipy.stats, matplotlib.pyplot, \
                      pandas, pyarrow.parquet, uproot, awkward, snakemake.cli
WARM := env -u PYTHONDONTWRITEBYTECODE TF_CPP_MIN_LOG_LEVEL=2 PYTHONWARNINGS=ignore $(BIN)/python -c

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[dev]'
	$(WARM) 'import $(WARM_IMPORTS_TF)' 2> $(VENV)/warm_imports.log & tf=$$!; \
	$(WARM) 'import $(WARM_IMPORTS_OTHER)' && wait $$tf || { cat $(VENV)/warm_imports.log; false; }
	touch $(STAMP)

install: $(STAMP)

# The htcondor executor plugin (dev extra) warns at import on machines without an HTCondor config;
# that line is not about this run, so `make run` keeps it off the terminal.
QUIET  := PYTHONWARNINGS="ignore:The environment variable CONDOR_CONFIG is unset:UserWarning"

run: install
	$(QUIET) $(BIN)/snakemake --profile profiles/local --configfile $(CONFIG)
	$(QUIET) $(BIN)/snakemake --profile profiles/local --configfile $(CONFIG) --report report.html
	@echo "Report written to $(CURDIR)/report.html"

# The suite on TEST_WORKERS processes (pytest-xdist): one pytest process kept one of CI's 2 cores busy
# (user time = wall time), most tests being single-threaded. The workers share one tiny pipeline run
# (tests/conftest.py complete_run).
TEST_WORKERS ?= 2

test: install
	$(BIN)/pytest -n $(TEST_WORKERS)

bench: install
	$(BIN)/python benchmarks/run_all.py

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

# Re-hash the raw inputs and model files listed in results/provenance.json; exit 1 on drift.
verify: install
	$(BIN)/python -m pipeline_steps.provenance results/provenance.json

dryrun: install
	$(BIN)/snakemake -n --configfile $(CONFIG)

clean:
	rm -rf results logs data/raw .snakemake report.html
