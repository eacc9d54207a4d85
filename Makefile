# The two commands of the README. A fresh machine needs only Python 3.11 with pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/config.yaml

.PHONY: install run test test-other-cpu bench lint dryrun clean verify

# Reinstall only when pyproject.toml changed: the stamp is newer than it otherwise.
# uv installs the packages (tools/install_with_uv.py: same versions as pip, under this machine's pip
# settings, 23-45 s against pip's 75-95 s on 2 cores), pip among them; pip does it where uv cannot. The venv
# is made without pip (ensurepip took 6 s) and uv put into it by the pip of $(PYTHON). uv's cache lies in the
# venv by default: on the venv's file system its files are hard links (no second copy, no copying), and it
# goes with the venv instead of filling a home directory's quota; set UV_CACHE_DIR to share one. uv ignores
# the upper bound of requires-python, so tools/check_python.py enforces it first (pip would have refused).
UV           := uv>=0.8,<1
UV_CACHE_DIR ?= $(VENV)/.uv-cache
# pip's default byte-compiles the ~17,000 installed modules one by one (~100 s of CPU), and
# `compileall -j 0` of them all (packages' test suites excepted) still took 30-38 s on 2 cores. The jobs import
# ~6,400 of them (the .pyc files a tiny run wrote in a venv that had none), so the install imports what the jobs
# import instead, in two processes, which writes their .pyc: 18-20 s on 2 cores (30 s with this machine 1.5x
# slower), 6,100 of the 6,400 and what is named below. A module that these imports miss is compiled by each
# process that imports it, and its .pyc kept unless the shell sets PYTHONDONTWRITEBYTECODE (as CI's does):
# then it is compiled again by every process. So the lists also hold
# what Snakemake itself, its report and pytest import (without them, each `snakemake -n` compiled 225 modules).
# Bytecode is written here even where PYTHONDONTWRITEBYTECODE is set (compileall did so too).
# TensorFlow's start-up lines (no CUDA driver, ...) go to .venv/warm_imports.log, shown if an import fails.
WARM_IMPORTS_TF_WORKFLOW := tensorflow, keras, tf2onnx.convert, onnx, onnxruntime, snakemake.cli, snakemake.api, \
                            snakemake.dag, snakemake.report.html_reporter, snakemake.profiles, snakemake.storage, \
                            docutils.core, nbformat, jinja2, pygments, smart_open, platformdirs, pytest, xdist
WARM_IMPORTS_TORCH_DATA  := torch, torch._dynamo, torch.onnx, zuko, sklearn.ensemble, scipy.stats, matplotlib.pyplot, \
                            pandas, pyarrow.parquet, uproot, awkward
WARM := env -u PYTHONDONTWRITEBYTECODE TF_CPP_MIN_LOG_LEVEL=2 PYTHONWARNINGS=ignore $(BIN)/python -c

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	$(BIN)/python tools/check_python.py
	$(PYTHON) -m pip --python $(BIN)/python install --quiet '$(UV)' \
	  && $(BIN)/python tools/install_with_uv.py $(PYTHON) $(UV_CACHE_DIR) pip -e '.[dev]' \
	  || { echo 'make install: uv could not install; installing with pip'; $(BIN)/python -m ensurepip --upgrade \
	       && $(BIN)/python -m pip install --quiet --upgrade pip \
	       && $(BIN)/python -m pip install --quiet --no-compile -e '.[dev]'; }
	$(WARM) 'import $(WARM_IMPORTS_TF_WORKFLOW)' 2> $(VENV)/warm_imports.log & tf=$$!; \
	$(WARM) 'import $(WARM_IMPORTS_TORCH_DATA)' && wait $$tf || { cat $(VENV)/warm_imports.log; false; }
	touch $(STAMP)

install: $(STAMP)

# The htcondor executor plugin (dev extra) warns at import on machines without an HTCondor config;
# that line is not about this run, so `make run` keeps it off the terminal.
QUIET  := PYTHONWARNINGS="ignore:The environment variable CONDOR_CONFIG is unset:UserWarning"

# The report is written by the same Snakemake process once the run has succeeded (a second process
# planned the whole workflow again first: ~3 s); it is written also when there was nothing to run.
run: install
	$(QUIET) $(BIN)/snakemake --profile profiles/local --report report.html --report-after-run --configfile $(CONFIG)
	@echo "Report written to $(CURDIR)/report.html"

# The suite on TEST_WORKERS processes (pytest-xdist): one pytest process kept one of CI's 2 cores busy
# (user time = wall time), most tests being single-threaded. The workers share one tiny pipeline run
# (tests/conftest.py complete_run).
TEST_WORKERS ?= 2

test: install
	$(BIN)/pytest -n $(TEST_WORKERS)

# The suite as an older x86-64 CPU (SSE4.1/4.2, no AVX2) computes it: other SIMD kernels in ATen, oneDNN, MKL,
# OpenBLAS and numpy, one thread, so other float sums and other trained weights (README "Another CPU"). A
# tolerance or a statistical margin tuned to one machine fails here. tools/check_other_cpu.py first asks the
# libraries that can tell whether the settings took effect: numpy 2.4 ignored its old feature names silently.
OTHER_CPU := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 TF_ENABLE_ONEDNN_OPTS=0 \
             MKL_ENABLE_INSTRUCTIONS=SSE4_2 OPENBLAS_CORETYPE=Nehalem \
             NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

test-other-cpu: install
	$(OTHER_CPU) $(BIN)/python tools/check_other_cpu.py
	$(OTHER_CPU) $(BIN)/pytest -n $(TEST_WORKERS)

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
