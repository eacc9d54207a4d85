"""Hyperparameter scans: expansion into model instances, the Snakemake fan-out, and the ranking."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml

from pipeline_steps.common.errors import ConfigError
from pipeline_steps.scan.expansion import expand_scans, instance_name
from pipeline_steps.scan.ranking import rank_points
from pipeline_steps.scan.step import run as rank_run
from tests.conftest import TINY_CONFIG, run_snakemake

GRID = {"hyperparameters.hidden_dim": [16, 32], "hyperparameters.n_bins": [4, 8]}


def _model(**extra):
    return {"kind": "flow", "dataset": "nanoaod", "table": "jets", "conditions": ["a"], "targets": ["b"],
            "hyperparameters": {"n_bins": 8, "hidden_dim": 64}, "training": {"epochs": 2, "batch_size": 8}, **extra}


def test_names_are_readable_and_depend_only_on_the_point():
    point = {"hyperparameters.n_bins": 8, "hyperparameters.hidden_dim": 64}
    assert instance_name("jets", point) == "jets__hidden_dim-64__n_bins-8"
    assert instance_name("jets", dict(reversed(list(point.items())))) == "jets__hidden_dim-64__n_bins-8"
    assert instance_name("m", {"training.learning_rate": 1e-3, "hyperparameters.conv_filters": [32, 16]}) == \
        "m__conv_filters-32_16__learning_rate-0.001"
    assert instance_name("m", {"x.scale": 1e6, "x.label": "a b/c"}) == "m__label-a_b_c__scale-1e06"
    # the same last part under two parents: the full path keeps the names apart
    assert instance_name("m", {"a.lr": 1, "b.lr": 2}) == "m__a-lr-1__b-lr-2"


def test_grid_and_points_expand_into_ordinary_models():
    config = {"models": {"jets": _model(scan={"grid": GRID, "points": [{"training.epochs": 5}],
                                              "metric": "chi2_ndf"}),
                         "other": _model()}}
    groups = expand_scans(config)
    names = list(config["models"])
    assert names[0] == "jets__hidden_dim-16__n_bins-4" and "jets" not in names and "other" in names
    assert len(names) == 6 and groups["jets"].instances == names[:5] and groups["jets"].metric == "chi2_ndf"
    instance = config["models"]["jets__hidden_dim-32__n_bins-4"]
    assert instance["hyperparameters"] == {"n_bins": 4, "hidden_dim": 32} and "scan" not in instance
    assert config["models"]["jets__epochs-5"]["training"] == {"epochs": 5, "batch_size": 8}
    assert expand_scans(config) == {}  # idempotent: nothing left to expand


@pytest.mark.parametrize("scan, words", [
    ({"grid": {"preprocessing.default": ["standard"]}}, "no mapping at 'preprocessing'"),
    ({"grid": {"dataset": ["x"]}}, "cannot be scanned"),
    ({"grid": {"hyperparameters.hidden_dim": []}}, "non-empty list"),
    ({}, "neither"),
    ({"grid": GRID, "metric": "accuracy"}, "scan.metric"),
])
def test_bad_scans_are_named(scan, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        expand_scans({"models": {"jets": _model(scan=scan)}})


def _scan_config(tmp_path, points=()):
    scan = {"grid": GRID, **({"points": list(points)} if points else {})}
    path = tmp_path / "scan.yaml"
    path.write_text(yaml.safe_dump({"models": {"jets": {"scan": scan, "training": {"epochs": 1}}}}))
    return path


def _planned(result_stdout: str) -> dict[str, int]:
    """{rule: count} from Snakemake's job-stats table."""
    table = result_stdout.split("Job stats:")[1].split("\n\n")[0]
    rows = [line.split() for line in table.splitlines()[3:] if line.strip()]
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] != "total"}


def test_a_2x2_scan_plans_four_independent_training_jobs(tmp_path):
    result = run_snakemake("-n", "results/scan/jets/best.json", "--configfile", str(TINY_CONFIG),
                           str(_scan_config(tmp_path)), workdir=tmp_path)
    planned = _planned(result.stdout)
    assert planned["train_flow"] == 4 and planned["validate_model"] == 4 and planned["rank_scan"] == 1
    trained = set(re.findall(r"results/train/(jets__[^/]+)/model\.pt", result.stdout))
    assert trained == {f"jets__hidden_dim-{h}__n_bins-{b}" for h in (16, 32) for b in (4, 8)}


@pytest.mark.slow
def test_adding_a_point_plans_only_the_new_point(tmp_path):
    """Train the four points (1 epoch, tiny data), then add a fifth: only it is planned."""
    four = _scan_config(tmp_path)
    targets = [f"results/train/jets__hidden_dim-{h}__n_bins-{b}/model.pt" for h in (16, 32) for b in (4, 8)]
    run_snakemake(*targets, "--configfile", str(TINY_CONFIG), str(four), workdir=tmp_path)
    five = _scan_config(tmp_path, points=[{"hyperparameters.hidden_dim": 8, "hyperparameters.n_bins": 4}])
    new = "results/train/jets__hidden_dim-8__n_bins-4/model.pt"
    # code edits in a shared checkout while the four train must not count: what is tested is that the
    # config (params, inputs) of the existing points does not change when a point is added
    result = run_snakemake("-n", *targets, new, "--rerun-triggers", "mtime", "params", "input",
                           "--configfile", str(TINY_CONFIG), str(five), workdir=tmp_path)
    planned = _planned(result.stdout)
    assert planned == {"preprocess_model": 1, "train_flow": 1}
    assert set(re.findall(r"output: results/train/(jets__[^/]+)/model\.pt", result.stdout)) == \
        {"jets__hidden_dim-8__n_bins-4"}


# --- ranking ---------------------------------------------------------------------------------------

def _write_point(tmp_path, name, auc, chi2, overlap, losses):
    (tmp_path / name).mkdir()
    metrics = tmp_path / name / "metrics.json"
    metrics.write_text(json.dumps({"model": name, "auc": auc, "chi2_ndf": chi2, "overlap": overlap}))
    history = tmp_path / name / "history.csv"
    pd.DataFrame({"epoch": range(1, len(losses) + 1), "validation_loss": losses}).to_csv(history, index=False)
    return str(metrics), str(history)


POINTS = {"jets__hidden_dim-16": {"hyperparameters.hidden_dim": 16},
          "jets__hidden_dim-32": {"hyperparameters.hidden_dim": 32},
          "jets__hidden_dim-64": {"hyperparameters.hidden_dim": 64},
          "jets__hidden_dim-1": {"hyperparameters.hidden_dim": 1}}


@pytest.mark.parametrize("metric", ["auc", "chi2_ndf", "overlap", "validation_loss"])
def test_ranking_orders_a_deliberately_bad_point_last(tmp_path, metric):
    values = {  # auc, chi2/ndf, overlap, validation losses; hidden_dim 1 is the bad point (an AUC of 0.03 is
        # as far from 0.5 as 0.97: a generator the BDT tells apart, whichever side)
        "jets__hidden_dim-16": (0.55, 1.5, 0.90, [2.0, 1.2]),
        "jets__hidden_dim-32": (0.48, 1.1, 0.95, [2.0, 1.0]),
        "jets__hidden_dim-64": (0.60, 2.0, 0.85, [2.0, 1.4]),
        "jets__hidden_dim-1": (0.03, 40.0, 0.10, [5.0, 4.0]),
    }
    files = [_write_point(tmp_path, name, *values[name]) for name in POINTS]
    outputs = {key: str(tmp_path / f"out.{ext}") for key, ext in (("ranking", "csv"), ("best", "json"), ("plot", "png"))}
    rank_run(metrics=[m for m, _ in files], histories=[h for _, h in files],
             scan={"model": "jets", "kind": "flow", "metric": metric, "points": POINTS}, **outputs)
    ranking = pd.read_csv(outputs["ranking"])
    assert list(ranking["instance"]) == ["jets__hidden_dim-32", "jets__hidden_dim-16", "jets__hidden_dim-64",
                                         "jets__hidden_dim-1"]
    assert list(ranking["rank"]) == [1, 2, 3, 4] and list(ranking["hyperparameters.hidden_dim"]) == [32, 16, 64, 1]
    best = json.loads(open(outputs["best"]).read())
    assert best == {"model": "jets", "best": "jets__hidden_dim-32", "metric": metric, "value": best["value"],
                    "train": "results/train/jets__hidden_dim-32", "export": "results/export/jets__hidden_dim-32"}
    assert (tmp_path / "out.png").stat().st_size > 1000


def test_calratio_ks_ranks_by_the_worst_output():
    rows = [{"instance": "a", "value": 0.2, "score": 0.2}, {"instance": "b", "value": float("nan"), "score": float("nan")},
            {"instance": "c", "value": 0.1, "score": 0.1}]
    from pipeline_steps.scan.ranking import metric_value

    assert metric_value("ks", "calratio_rnn", {"cr_test_ks_sig": 0.1, "cr_test_ks_qcd": 0.3}, None) == (0.3, 0.3)
    table = rank_points(rows, {"a": {"x": 1}, "b": {"x": 2}, "c": {"x": 3}})
    assert list(table["instance"]) == ["c", "a", "b"]  # a point without a value goes last


def test_ranking_writes_a_list_valued_point_as_json():
    """A grid over a list (e.g. layer widths) gives one cell per point: its JSON text, not a pandas list."""
    rows = [{"instance": "a", "value": 0.2, "score": 0.2}, {"instance": "b", "value": 0.1, "score": 0.1}]
    points = {"a": {"hyperparameters.layers": [64, 64]}, "b": {"hyperparameters.layers": [128]}}
    table = rank_points(rows, points)
    assert list(table["hyperparameters.layers"]) == ["[128]", "[64, 64]"]
