"""Shared fixtures: the repository root, the venv's snakemake, and a runner for workflow tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TINY_CONFIG = REPO / "tests" / "config" / "tiny.yaml"


#: A NanoAOD jets table (config ``datasets.<d>.tables.<t>``) for the generation tests' small layouts.
JETS_TABLE = {
    "collection": {"counter": "nJet", "prefix": "Jet_"},
    "fields": ["pt", "area", "nConstituents"],
    "event_fields": ["PV_npvs"],
    "match": {"index": "genJetIdx", "collection": {"counter": "nGenJet", "prefix": "GenJet_"},
              "fields": ["pt", "eta"], "output_prefix": "gen_"},
}


def run_snakemake(*args: str, workdir: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the workflow's Snakefile with the test profile, in ``workdir`` (outputs land there)."""
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--profile", str(REPO / "profiles" / "ci")]
    if workdir is not None:
        command += ["--directory", str(workdir)]
    environment = dict(os.environ)  # no PYTHONHASHSEED pin: outputs must not depend on it (test_reproducibility)
    result = subprocess.run([*command, *args], cwd=workdir or REPO, capture_output=True, text=True, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def tiny_config() -> Path:
    return TINY_CONFIG


def preprocess_outputs(folder: Path) -> dict[str, Path]:
    """Output paths of ``preprocess.model_splits.run`` under ``folder``, one per key it writes."""
    from pipeline_steps.preprocess.model_splits import OUTPUT_KEYS

    names = {"train": "train.parquet", "validation": "validation.parquet", "test": "test.parquet",
             "transforms": "transforms.json", "distributions": "plots/distributions.png",
             "correlations": "plots/correlations.png"}
    assert set(names) == set(OUTPUT_KEYS)
    return {key: folder / name for key, name in names.items()}
