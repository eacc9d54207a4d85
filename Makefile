# The two commands of the README. A fresh machine needs only Python 3.11 with pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/config.yaml

.PHONY: install run test bench lint dryrun clean verify

# Reinstall only when pyproject.toml changed: the stamp is newer than it otherwise.
# pip byte-compiles the ~17,000 installed modules one by one (~100 s of CPU, a third of the install);
# compileall does the same on every core (-j 0), and jobs then import TensorFlow and torch from .pyc.
# Like pip, it leaves a file that does not compile as source (torch ships a test file in Python 3.12 syntax): `|| true`.
# The packages' own test suites (`test/`, `tests/` folders: 4,100 of the 17,000 modules) are never imported
# by a job, so they are not compiled (40 -> 34 s on 2 cores).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 -x '/tests?/' $(VENV)/lib > /dev/null || true
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
