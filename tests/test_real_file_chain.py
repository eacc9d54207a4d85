"""A ROOT file that ROOT itself wrote (CMS Z->mumu candidates, a few hundred test rows) runs the whole
chain with the default machinery: ingest, preprocess, train, generate, validate and a verified export.
Its test split is too small for the figure of merit, which must then say so instead of failing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY_CONFIG, run_snakemake
from tests.real_files import REAL, needs_real_files

pytestmark = pytest.mark.slow


def _config(path: Path) -> Path:
    config = {
        "datasets": {"zmumu": {
            "files": [str(REAL / "uproot-Zmumu.root")], "tree": "events", "step_size": 1000, "empty_tree": "error",
            "identity": ["Run", "Event"], "tables": {"pairs": {"fields": ["pt1", "eta1", "phi1", "Q1", "pt2", "M"], "rename": {"Q1": "charge1"}}}}},
        "models": {"zmumu": {
            "kind": "flow", "dataset": "zmumu", "table": "pairs", "conditions": ["eta1", "phi1", "charge1"],
            "targets": ["pt1", "pt2", "M"], "split": {"train": 0.92, "validation": 0.04, "test": 0.04},
            "preprocessing": {"default": "standard", "dequantize": ["charge1"], "decorrelate_conditions": False,
                              "per_variable": {"pt1": "log_standard", "pt2": "log_standard", "M": "log_standard"},
                              "targets": "standard"},
            "hyperparameters": {"n_bins": 8, "hidden_dim": 32, "n_blocks": 2, "activation": "relu", "batch_norm": False},
            "training": {"epochs": 2, "batch_size": 128, "learning_rate": 1.0e-3, "weight_decay": 1.0e-5,
                         "scheduler": "cosine", "checkpoint_every": 1}}},
    }
    path.write_text(yaml.safe_dump(config))
    return path


@needs_real_files
def test_root_written_file_runs_the_chain_and_a_small_test_split_is_reported(tmp_path):
    extra = _config(tmp_path / "zmumu.yaml")
    targets = ("results/validate/zmumu/metrics.json", "results/export/zmumu/bundle.json",
               "results/ingest/zmumu/summary.json")
    run_snakemake(*targets, "--configfile", str(TINY_CONFIG), str(extra), workdir=tmp_path)
    summary = json.loads((tmp_path / "results/ingest/zmumu/summary.json").read_text())
    assert sum(f["rows_out"] for f in summary["tables"]["pairs"]["files"]) == 2304  # every entry of the tree
    metrics = json.loads((tmp_path / "results/validate/zmumu/metrics.json").read_text())
    assert metrics["status"] == "not computable" and metrics["auc"] is None
    assert f"only {metrics['rows_real']} real" in metrics["reason"] and metrics["rows_real"] < 136
    assert (tmp_path / "results/validate/zmumu/distributions.png").stat().st_size > 0
    bundle = json.loads((tmp_path / "results/export/zmumu/bundle.json").read_text())
    assert bundle["verified"] is True and bundle["io"]["tree"] == "events"
    assert bundle["io"]["branches"] == {"charge1": "Q1"}  # run_bundle.py reads the renamed condition from Q1
