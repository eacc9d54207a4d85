"""Hyperparameter scans: expansion into model instances, the Snakemake fan-out, and the ranking."""

from __future__ import annotations

import json
import re

import numpy as np
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
    # CalRatio's control-region KS on a flow; keys that change what points are compared on
    ({"grid": GRID, "metric": "ks"}, "models.jets.scan.metric: a flow model is ranked by one of ['auc', "),
    ({"grid": {"targets": [["b"], ["b", "c"]]}}, "it changes what the points are compared on"),
    ({"grid": {"split.test": [0.1, 0.4]}}, "it changes what the points are compared on"),
    # 64 and "64", and values equal to 6 digits, would share one name
    ({"grid": {"hyperparameters.hidden_dim": [64, "64"]}}, "would both be named 'jets__hidden_dim-64'"),
    ({"grid": {"training.learning_rate": [0.1234561, 0.1234564]}}, "would both be named"),
    # the flow's NLL is in the preprocessed space: points with other transforms measure another loss
    ({"grid": {"preprocessing": [{"default": "standard"}, {"default": "minmax"}]}, "metric": "validation_loss"},
     "metric validation_loss cannot rank a scan of 'preprocessing'"),
])
def test_bad_scans_are_named(scan, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        expand_scans({"models": {"jets": _model(scan=scan)}})


def test_keys_a_schedule_overrides_are_refused_and_calratio_defaults_to_its_ks():
    """Two GAN rates 100x apart under a schedule trained byte-identical models, ranked by name; CalRatio's
    default metric had been the AUC it does not have, found missing after every training."""
    schedule = [{"length": 2, "unit": "epochs", "law": "constant", "start": 1.0e-3}]
    gan = {**_model(kind="covariance_gan"), "training": {"epochs": 2, "schedule": schedule,
                                                          "learning_rate": {"generator": 1e-3, "referee": 1e-3}}}
    for key in ("training.learning_rate.generator", "training.learning_rate.discriminator"):
        with pytest.raises(ConfigError, match=re.escape(f"key {key!r} has no effect: training.schedule sets")):
            expand_scans({"models": {"gan": {**gan, "scan": {"grid": {key: [1e-4, 1e-2]}}}}})
    referee = expand_scans({"models": {"gan": {**gan, "scan": {"grid": {"training.learning_rate.referee": [1e-4, 1e-2]}}}}})
    assert len(referee["gan"].instances) == 2  # the referee keeps its own rate
    flow = _model(scan={"grid": {"training.learning_rate": [1e-4, 1e-2]}})
    flow["training"]["schedule"] = schedule
    with pytest.raises(ConfigError, match="has no effect"):
        expand_scans({"models": {"jets": flow}})
    calratio = {**_model(kind="calratio_rnn"), "scan": {"grid": {"hyperparameters.lstm_units": [8, 16]}}}
    assert expand_scans({"models": {"cr": dict(calratio)}})["cr"].metric == "ks"
    with pytest.raises(ConfigError, match=re.escape("a calratio_rnn model is ranked by one of ['ks', 'validation_loss']")):
        expand_scans({"models": {"cr": {**calratio, "scan": {**calratio["scan"], "metric": "auc"}}}})
    lam = {**calratio, "scan": {"grid": {"hyperparameters.adversary_lambda": [1, 10]}, "metric": "validation_loss"}}
    with pytest.raises(ConfigError, match="cannot rank a scan of 'hyperparameters.adversary_lambda'"):
        expand_scans({"models": {"cr": lam}})


def test_two_scans_naming_one_instance_are_refused():
    """``m`` with {x: 1, y: 2} and ``m__x-1`` with {y: 2} both expand to m__x-1__y-2: the second had
    silently replaced the first."""
    config = {"models": {"jets": _model(scan={"points": [{"hyperparameters.hidden_dim": 16, "hyperparameters.n_bins": 4}]}),
                         "jets__hidden_dim-16": _model(scan={"points": [{"hyperparameters.n_bins": 4}]})}}
    with pytest.raises(ConfigError, match=r"models.jets__hidden_dim-16.scan: .* named 'jets__hidden_dim-16__n_bins-4', "
                                          r"which a point of another scan is named too"):
        expand_scans(config)


def test_equal_values_written_two_ways_are_one_instance():
    groups = expand_scans({"models": {"jets": _model(scan={"grid": {"training.epochs": [1000000, 1.0e6]}})}})
    assert groups["jets"].instances == ["jets__epochs-1000000"]
    # a flag is not a number: True == 1 in Python had dropped the second point silently
    groups = expand_scans({"models": {"jets": _model(scan={"points": [{"x.flag": True}, {"x.flag": 1}]}, x={})}})
    assert groups["jets"].instances == ["jets__flag-true", "jets__flag-1"]


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


def test_a_2x2_scan_plans_four_independent_training_jobs_on_one_preprocessing(tmp_path):
    result = run_snakemake("-n", "results/scan/jets/best.json", "--configfile", str(TINY_CONFIG),
                           str(_scan_config(tmp_path)), workdir=tmp_path)
    planned = _planned(result.stdout)
    assert planned["train_flow"] == 4 and planned["validate_model"] == 4 and planned["rank_scan"] == 1
    # the points set no preprocessing key: one preprocessing, named after the scan, feeds all four
    assert planned["preprocess_model"] == 1
    assert set(re.findall(r"results/preprocess/([^/\s]+)/train\.parquet", result.stdout)) == {"jets"}
    trained = set(re.findall(r"results/train/(jets__[^/]+)/model\.pt", result.stdout))
    assert trained == {f"jets__hidden_dim-{h}__n_bins-{b}" for h in (16, 32) for b in (4, 8)}


@pytest.mark.slow
def test_adding_a_point_plans_only_the_new_point(tmp_path):
    """Train the four points (1 epoch, tiny data), then add a fifth: only its training is planned."""
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
    assert planned == {"train_flow": 1}  # on the scan's shared preprocessing, which exists
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
    values = {  # auc, chi2/ndf, overlap, validation losses; hidden_dim 1 is the bad point
        "jets__hidden_dim-16": (0.55, 1.5, 0.90, [2.0, 1.2]),
        "jets__hidden_dim-32": (0.48, 1.1, 0.95, [2.0, 1.0]),
        "jets__hidden_dim-64": (0.60, 2.0, 0.85, [2.0, 1.4]),
        "jets__hidden_dim-1": (0.97, 40.0, 0.10, [5.0, 4.0]),
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
                    "within_error_of_best": [], "train": "results/train/jets__hidden_dim-32",
                    "export": "results/export/jets__hidden_dim-32"}
    assert (tmp_path / "out.png").stat().st_size > 1000


def test_calratio_ks_ranks_by_the_worst_output():
    rows = [{"instance": "a", "value": 0.2, "score": 0.2}, {"instance": "b", "value": float("nan"), "score": float("nan")},
            {"instance": "c", "value": 0.1, "score": 0.1}]
    from pipeline_steps.scan.ranking import metric_value

    value, error, score = metric_value("ks", "calratio_rnn", {"cr_test_ks_sig": 0.1, "cr_test_ks_qcd": 0.3}, None)
    assert (value, score) == (0.3, 0.3) and np.isnan(error)
    for order in ((None, 0.3), (0.3, None)):  # a null KS (not computable) leaves the point without a score
        document = dict(zip(("cr_test_ks_sig", "cr_test_ks_qcd"), order))
        assert np.isnan(metric_value("ks", "calratio_rnn", document, None)[2])
    table = rank_points(rows, {"a": {"x": 1}, "b": {"x": 2}, "c": {"x": 3}})
    assert list(table["instance"]) == ["c", "a", "b"]  # a point without a value goes last


def test_ranking_writes_a_list_valued_point_as_json():
    """A grid over a list (e.g. layer widths) gives one cell per point: its JSON text, not a pandas list."""
    rows = [{"instance": "a", "value": 0.2, "score": 0.2}, {"instance": "b", "value": 0.1, "score": 0.1}]
    points = {"a": {"hyperparameters.layers": [64, 64]}, "b": {"hyperparameters.layers": [128]}}
    table = rank_points(rows, points)
    assert list(table["hyperparameters.layers"]) == ["[128]", "[64, 64]"]


def test_auc_ranks_by_its_excess_over_the_floor_and_names_the_points_within_errors():
    """|AUC - 0.5| had ranked 0.44 (noise below the floor) behind 0.55, and a winner by noise looked like one."""
    from pipeline_steps.scan.ranking import best_pointer, metric_value

    documents = {"a": {"auc": 0.55, "auc_minus_floor": 0.05, "auc_minus_floor_error": 0.03},
                 "b": {"auc": 0.44, "auc_minus_floor": -0.06, "auc_minus_floor_error": 0.03},
                 "c": {"auc": 0.53, "auc_minus_floor": 0.03, "auc_minus_floor_error": 0.04},
                 "d": {"auc": 0.60, "auc_error": 0.01}}  # no floor: AUC - 0.5, with the AUC's error
    rows = [dict(zip(("value", "error", "score"), metric_value("auc", "flow", documents[name], None)), instance=name)
            for name in documents]
    table = rank_points(rows, {name: {"x": i} for i, name in enumerate(documents)})
    assert list(table["instance"]) == ["b", "c", "a", "d"]
    assert list(table["within_error_of_best"]) == [True, False, False, False]  # c: 0.09 apart, errors 0.05
    documents["c"]["auc_minus_floor_error"] = 0.1
    rows[2] = dict(zip(("value", "error", "score"), metric_value("auc", "flow", documents["c"], None)), instance="c")
    ranked = rank_points(rows, {name: {"x": i} for i, name in enumerate(documents)})
    assert best_pointer(ranked, "m", "auc")["within_error_of_best"] == ["c"]


def test_a_shared_floor_cancels_in_the_comparison_with_the_best():
    """Points validated on the same real rows share one floor: two AUCs 0.05 apart with errors 0.015 are
    told apart (0.05 > 0.021), although each excess carries the floor's 0.04 as well (0.05 < 0.060)."""
    from pipeline_steps.scan.ranking import shared_floor_errors

    floor = {"auc": 0.51, "auc_each_halving": [0.50, 0.52], "auc_mean_error": 0.04}
    documents = [{"auc": 0.56, "auc_error": 0.015, "auc_minus_floor": 0.05, "auc_minus_floor_error": 0.0427,
                  "floor": floor},
                 {"auc": 0.61, "auc_error": 0.015, "auc_minus_floor": 0.10, "auc_minus_floor_error": 0.0427,
                  "floor": dict(floor)}]
    rows = [{"instance": name, "value": d["auc"], "error": d["auc_minus_floor_error"], "score": d["auc_minus_floor"]}
            for name, d in zip("ab", documents)]
    assert list(rank_points(rows, {"a": {"x": 1}, "b": {"x": 2}})["within_error_of_best"]) == [True, True]
    tie_errors = shared_floor_errors("auc", documents)
    assert tie_errors == [0.015, 0.015]
    shared = [{**row, "tie_error": error} for row, error in zip(rows, tie_errors)]
    table = rank_points(shared, {"a": {"x": 1}, "b": {"x": 2}})
    assert list(table["within_error_of_best"]) == [True, False]
    assert "tie_error" not in table and list(table["error"]) == [0.0427, 0.0427]
    documents[1]["floor"] = {**floor, "auc_each_halving": [0.50, 0.53]}  # another floor: nothing cancels
    assert shared_floor_errors("auc", documents) is None
    assert shared_floor_errors("chi2_ndf", documents[:1]) is None


def test_validation_loss_is_the_kept_epochs():
    """Flows and the GAN keep their last weights, CalRatio its selected epoch: an overfitted point (best
    epoch 1.0, kept 2.5) had ranked ahead of one that kept 1.2."""
    from pipeline_steps.scan.ranking import metric_value

    overfit = pd.DataFrame({"epoch": [1, 2, 3], "validation_loss": [3.0, 1.0, 2.5]})
    steady = pd.DataFrame({"epoch": [1, 2, 3], "validation_loss": [3.0, 1.5, 1.2]})
    assert metric_value("validation_loss", "flow", {}, overfit)[0] == 2.5
    assert metric_value("validation_loss", "flow", {}, steady)[0] == 1.2
    calratio = pd.DataFrame({"epoch": [1, 2], "val_loss": [-5.878, -5.914]})
    assert metric_value("validation_loss", "calratio_rnn", {}, calratio, kept_epoch=1)[0] == -5.878


def test_a_typo_in_a_grid_key_is_said_once_for_the_scanned_model():
    """It had been one line per instance (125 for a 5x5x5 grid), naming instances the user never wrote."""
    from pathlib import Path

    from pipeline_steps.scan.expansion import validate_instances

    config = yaml.safe_load(Path("config/config.yaml").read_text())
    config["models"]["jets"]["scan"] = {"grid": {"hyperparameters.hiden_dim": [16, 32, 64, 128, 256]}}
    groups = expand_scans(config)
    with pytest.raises(ConfigError) as error:
        validate_instances(config, groups, "workflow/schemas/config.schema.yaml")
    lines = str(error.value).splitlines()
    assert len(lines) == 2 and lines[1].strip().startswith(
        "models.jets.hyperparameters: Additional properties are not allowed ('hiden_dim' was unexpected)")
    assert "(in models.jets.scan points {'hyperparameters.hiden_dim': " in lines[1] and lines[1].endswith(" and 2 more)")


def test_a_point_without_a_value_says_why_and_integers_stay_integers(tmp_path):
    """A not-computable point had ranked last with empty cells only; points with other keys wrote 16 as 16.0."""
    points = {"jets__hidden_dim-16": {"hyperparameters.hidden_dim": 16}, "jets__n_bins-4": {"hyperparameters.n_bins": 4}}
    documents = {"jets__hidden_dim-16": {"auc": 0.55}, "jets__n_bins-4": {"auc": None, "reason": "only 40 real rows"}}
    files = []
    for name, document in documents.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(document))
        files.append(str(tmp_path / name / "metrics.json"))
    outputs = {key: str(tmp_path / f"out.{ext}") for key, ext in (("ranking", "csv"), ("best", "json"), ("plot", "png"))}
    rank_run(metrics=files, histories=[str(tmp_path / "none.csv")] * 2,
             scan={"model": "jets", "kind": "flow", "metric": "auc", "points": points}, **outputs)
    lines = open(outputs["ranking"]).read().splitlines()
    assert lines[1].startswith("1,jets__hidden_dim-16,0.55,") and lines[1].endswith(",16,")
    assert "only 40 real rows" in lines[2] and lines[2].endswith(",,4")


def test_validation_loss_refuses_keys_of_the_network_that_measures_it():
    """A weaker referee (GAN) or adversary (CalRatio) has a higher loss or a lower val_loss: it ranked best."""
    gan = {**_model(kind="covariance_gan"), "scan": {"grid": {"hyperparameters.discriminator_layers": [3, 7]},
                                                     "metric": "validation_loss"}}
    with pytest.raises(ConfigError, match="cannot rank a scan of 'hyperparameters.discriminator_layers'"):
        expand_scans({"models": {"gan": gan}})
    parent = {**_model(kind="calratio_rnn"),
              "scan": {"points": [{"hyperparameters": {"lstm_units": 8}}, {"hyperparameters": {"lstm_units": 16}}],
                       "metric": "validation_loss"}}
    with pytest.raises(ConfigError, match="cannot rank a scan of 'hyperparameters'"):
        expand_scans({"models": {"cr": parent}})


def test_a_point_without_a_ks_gives_the_validations_own_reason():
    from pipeline_steps.scan.step import _why_no_value

    document = {"cr_test_ks_bib": None, "not_computed": {"cr_test_ks_bib": "MC worth fewer than 10 jets"}}
    assert _why_no_value("ks", "calratio_rnn", document) == "MC worth fewer than 10 jets"
    assert _why_no_value("ks", "calratio_rnn", {}) == "no finite control-region KS in metrics.json"


def test_a_points_preprocessing_keys_are_those_that_change_the_models_value():
    """What names a point's preprocessing: keys set to the model's own value change nothing (a flag is not a number)."""
    model = _model(preprocessing={"default": "standard", "clip": 1, "per_variable": {}},
                   scan={"points": [{"preprocessing.default": "standard"}, {"preprocessing.clip": True},
                                    {"preprocessing.default": "minmax", "hyperparameters.n_bins": 4},
                                    {"preprocessing.per_variable.b": "standard"},
                                    {"preprocessing": {"default": "standard", "clip": 1, "per_variable": {}}}]})
    group = expand_scans({"models": {"jets": model}})["jets"]
    assert list(group.preprocessing.values()) == [{}, {"preprocessing.clip": True}, {"preprocessing.default": "minmax"},
                                                  {"preprocessing.per_variable.b": "standard"}, {}]
    whole = {"default": "standard", "clip": True, "per_variable": {}}  # True for 1 inside a mapping: its own
    model["scan"] = {"points": [{"preprocessing": whole}]}
    assert list(expand_scans({"models": {"jets": model}})["jets"].preprocessing.values()) == [{"preprocessing": whole}]


def test_calratio_ks_takes_the_worst_outputs_error_and_never_reads_an_error_as_a_distance():
    from pipeline_steps.scan.ranking import metric_value

    document = {"cr_test_ks_sig": 0.1, "cr_test_ks_qcd": 0.3, "cr_test_ks_bib": 0.2, "cr_test_ks_sig_error": 0.9,
                "cr_test_ks_qcd_error": 0.04, "cr_test_ks_bib_error": 0.05}
    assert metric_value("ks", "calratio_rnn", document, None) == (0.3, 0.04, 0.3)
