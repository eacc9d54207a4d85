"""CalRatio final plots: S/sqrt(B) and efficiencies against direct sums; train -> select -> plots on files."""

import os

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from pipeline_steps.models.calratio_rnn import SEQUENCE_NAMES
from pipeline_steps.train import calratio_rnn as training
from pipeline_steps.train import calratio_selection as selection
from pipeline_steps.validate import calratio_plots as plots
from tests.calratio_samples import synthetic_split


def test_soverb_scan_matches_direct_sums():
    background = np.full(12, 0.75)  # 12 background jets of weight 0.75: worth 12, above the minimum of 10
    scores = np.r_[0.9, 0.8, 0.3, np.full(11, 0.7), 0.95]
    is_signal = np.r_[np.ones(3, bool), np.zeros(12, bool)]
    weights = np.r_[1.0, 2.0, 1.0, background]
    significance, efficiency = plots.soverb_scan(scores, is_signal, weights, [0.5, 0.9, 0.96])
    assert significance[0] == pytest.approx(3.0 / np.sqrt(9.0))  # S = 1 + 2, B = 12 x 0.75
    assert significance[1] == 0.0  # one background jet left: below the minimum (and S = 0: 0.9 is not > 0.9)
    assert significance[2] == 0.0 and efficiency[0] == pytest.approx(0.75)


def test_soverb_needs_background_that_does_not_cancel():
    """The optimum had sat where 5 QCD jets, one of weight -1, nearly cancelled: S/sqrt(B) 86 at one cut."""
    scores = np.r_[np.full(20, 0.9), np.linspace(0.1, 0.5, 40), np.full(5, 0.85)]
    is_signal = np.r_[np.ones(20, bool), np.zeros(45, bool)]
    weights = np.r_[np.ones(20), np.ones(40), [1.0, 1.0, 0.6, 0.5, -2.7]]  # the 5 at 0.85 sum to 0.4
    significance, _ = plots.soverb_scan(scores, is_signal, weights, [0.6, 0.3])
    assert significance[0] == 0.0  # 20 / sqrt(0.4) = 32 before: 5 jets worth 0.01
    assert significance[1] == pytest.approx(20.0 / np.sqrt(20 * 1.0 + 0.4))


def test_signal_efficiency_per_mass_point():
    table = plots.signal_efficiency_by_mass(
        scores=[0.9, 0.1, 0.8, 0.7], weights=[1.0, 3.0, 1.0, 1.0],
        mass_s=[50, 50, 150, 150], mass_h=[600, 600, 1000, 1000], threshold=0.5,
    )
    assert table.set_index(["mS", "mH"])["efficiency"].to_dict() == {(50, 600): 0.25, (150, 1000): 1.0}


def test_roc_auc_is_sklearns_weighted_auc():
    rng = np.random.default_rng(0)
    scores, labels, weights = rng.random(50), rng.integers(0, 2, 50), rng.uniform(0.5, 2, 50)
    scores[:10] = scores[10:20]  # ties
    efficiency, mistag, auc = plots.weighted_roc(scores, labels, weights)
    assert auc == pytest.approx(roc_auc_score(labels, scores, sample_weight=weights), rel=1e-12)
    expected_mistag, expected_efficiency, _ = roc_curve(labels, scores, sample_weight=weights, drop_intermediate=False)
    np.testing.assert_allclose(efficiency, expected_efficiency)
    np.testing.assert_allclose(mistag, expected_mistag)


def test_negative_mc_weights_give_the_pair_statistic_where_sklearn_stops():
    """NLO samples carry negative weights; sklearn's auc refused the non-monotonic curve they make."""
    rng = np.random.default_rng(1)
    scores, labels = rng.random(300), rng.integers(0, 2, 300).astype(bool)
    weights = np.where(np.arange(300) % 10 == 0, -1.0, 1.0) * rng.uniform(0.5, 2, 300)
    with pytest.raises(ValueError, match="neither increasing nor decreasing"):
        roc_auc_score(labels, scores, sample_weight=weights)
    _, _, auc = plots.weighted_roc(scores, labels, weights)
    pairs = (scores[labels][:, None] > scores[~labels][None, :]) + 0.5 * (scores[labels][:, None] == scores[~labels][None, :])
    w_pairs = weights[labels][:, None] * weights[~labels][None, :]
    assert auc == pytest.approx(float((pairs * w_pairs).sum() / w_pairs.sum()), rel=1e-12)


def _write_split(folder, stem, arrays, conditions):
    table = pd.DataFrame({f"cond__{name}": arrays["jets"][:, i] for i, name in enumerate(conditions)})
    for key in ("label", "is_data", "weight", "mc_weight", "llp_mS", "llp_mH", "jet_pt"):
        if key in arrays:
            table[key] = arrays[key]
    table.to_parquet(folder / f"{stem}.parquet")
    np.savez(folder / f"{stem}_sequences.npz", **{name: arrays[name] for name in SEQUENCE_NAMES})


@pytest.mark.slow
def test_train_select_and_plot_from_preprocessed_files(tmp_path):
    conditions = ["jet_pt", "jet_eta", "jet_phi", "jet_E", "jet_logRatio"]
    folder = tmp_path / "preprocess"
    folder.mkdir()
    for index, split in enumerate(("train", "validation", "test")):
        size = 90 if split == "train" else 45
        _write_split(folder, split, synthetic_split(size, "main", seed=index), conditions)
        _write_split(folder, f"cr_{split}", synthetic_split(size, "cr", seed=10 + index), conditions)
    model = {
        "conditions": conditions,
        "preprocessing": {"pad_value": 0.0},
        "hyperparameters": {"conv_filters": [4], "lstm_units": 4, "dense_units": [8], "adversary_units": [4]},
        "training": {"epochs": 2, "num_splits": 2, "batch_size": 64, "ks_threshold": 0.3, "selection_metric": "val_loss"},
    }
    train_dir, checkpoints = tmp_path / "train", tmp_path / "checkpoints"
    training.run(folder, train_dir / "history.csv", train_dir / "final.keras", model, 3, checkpoints, threads=1,
                 log=tmp_path / "train.log")
    selection.run(train_dir / "history.csv", train_dir / "final.keras", train_dir / "selection.json",
                  train_dir / "chosen.keras", model, checkpoints, log=tmp_path / "select.log")
    outputs = {name: tmp_path / "validate" / f"{name}.png" for name in plots.PLOT_NAMES}
    outputs["metrics"] = tmp_path / "validate" / "metrics.json"
    plots.run(train_dir / "chosen.keras", folder, train_dir / "history.csv", train_dir / "selection.json", outputs,
              model, log=tmp_path / "plots.log")

    history = pd.read_csv(train_dir / "history.csv")
    chosen = json.loads((train_dir / "selection.json").read_text())
    metrics = json.loads(outputs["metrics"].read_text())
    assert list(history["epoch"]) == [1, 2] and chosen["epoch"] in (1, 2)
    assert metrics["chosen_epoch"] == chosen["epoch"] and metrics["n_test_jets"] == 45
    assert 0.0 <= metrics["auc_sig_vs_qcd"] <= 1.0 and 0.0 <= metrics["auc_sig_vs_bib"] <= 1.0
    assert all(0.0 <= metrics[f"cr_test_{k}"] <= 1.0 for k in ("ks_sig", "ks_qcd", "ks_bib"))
    assert {(p["mS"], p["mH"]) for p in metrics["signal_efficiency_by_mass"]} <= {(50.0, 600.0), (50.0, 1000.0), (150.0, 600.0), (150.0, 1000.0)}
    for name in plots.PLOT_NAMES:
        assert outputs[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "epoch 2" in (tmp_path / "train.log").read_text()


def test_a_missing_or_zero_weight_class_says_why_its_auc_is_missing():
    rng = np.random.default_rng(2)
    n = 600
    labels = rng.integers(0, 2, n)  # signal and QCD, no BIB
    weights = np.ones(n)
    weights[np.flatnonzero(labels == 1)[:2]] = [-1.0e6, 0.0]  # QCD weights summing below zero
    main = {"label": labels, "mc_weight": weights, "llp_mS": np.full(n, 50.0), "llp_mH": np.full(n, 600.0)}
    cr = {"is_data": rng.integers(0, 2, 400).astype(bool), "mc_weight": np.ones(400)}
    metrics = plots.compute_metrics(rng.dirichlet([1, 1, 1], n), main, rng.dirichlet([1, 1, 1], 400), cr,
                                    plots.PlotSettings())
    assert "auc_sig_vs_qcd" not in metrics and "auc_sig_vs_bib" not in metrics
    assert metrics["not_computed"]["auc_sig_vs_bib"] == "the test split has no BIB jets"
    assert metrics["not_computed"]["auc_sig_vs_qcd"].startswith("the weights of the QCD jets sum to -")


def test_an_optimum_beyond_the_measured_background_is_said():
    """A near-perfect classifier leaves fewer than 10 background jets above every cut but the lowest: the
    best measured cut is then not the optimum, and metrics.json says so."""
    rng = np.random.default_rng(4)
    n = 400
    labels = np.r_[np.zeros(200, int), np.ones(200, int)]
    probabilities = np.zeros((n, 3))
    probabilities[:, 0] = np.where(labels == 0, rng.uniform(0.9, 1.0, n), rng.uniform(0.0, 0.005, n))
    main = {"label": labels, "mc_weight": np.ones(n), "llp_mS": np.full(n, 50.0), "llp_mH": np.full(n, 600.0)}
    cr = {"is_data": rng.integers(0, 2, 100).astype(bool), "mc_weight": np.ones(100)}
    metrics = plots.compute_metrics(probabilities, main, rng.dirichlet([1, 1, 1], 100), cr, plots.PlotSettings())
    assert metrics["best_threshold"] == 0.0 and "S/sqrt(B) is not measured there" in metrics["soverb_note"]


def test_an_s_over_sqrt_b_or_ks_that_cannot_be_computed_is_null_with_its_reason():
    """8 background jets had given best_soverb 0.0 at threshold 0.0 (read as an optimum), signal weights
    below zero an efficiency of -9e13, and a control region of data only a bare NaN in metrics.json."""
    rng = np.random.default_rng(5)
    n = 208
    labels = np.r_[np.zeros(200, int), np.ones(8, int)]
    main = {"label": labels, "mc_weight": np.ones(n), "llp_mS": np.full(n, 50.0), "llp_mH": np.full(n, 600.0)}
    cr = {"is_data": np.ones(100, bool), "mc_weight": np.ones(100)}  # data only: no MC to compare with
    metrics = plots.compute_metrics(rng.dirichlet([1, 1, 1], n), main, rng.dirichlet([1, 1, 1], 100), cr,
                                    plots.PlotSettings())
    assert metrics["best_soverb"] is None and metrics["best_threshold"] is None
    assert "no cut keeps signal and background worth 10" in metrics["not_computed"]["best_soverb"]
    assert metrics["cr_test_ks_bib"] is None and "MC 0 jets" in metrics["not_computed"]["cr_test_ks_bib"]
    json.dumps(metrics, allow_nan=False)  # strict JSON
    main["mc_weight"] = np.where(labels == 0, -1.0, 1.0)
    negative = plots.compute_metrics(rng.dirichlet([1, 1, 1], n), main, rng.dirichlet([1, 1, 1], 100), cr,
                                     plots.PlotSettings())
    assert negative["signal_efficiency_at_best"] is None
    assert negative["not_computed"]["best_soverb"] == "the test split's signal jets have no positive total weight"


def _classifier_sample(n_events: int, jets_per_event: int, seed: int):
    """Main and control-region test jets, each event's jets identical copies (the extreme of correlated
    jets), so that drawing jets one by one must understate the errors by sqrt(jets_per_event)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.integers(0, 3, n_events), jets_per_event)
    signal_score = np.repeat(rng.beta(2, 2, n_events), jets_per_event) * 0.6 + 0.4 * (labels == 0)
    probabilities = np.c_[signal_score, (1 - signal_score) / 2, (1 - signal_score) / 2]
    events = np.repeat(np.arange(n_events), jets_per_event)
    main = {"label": labels, "mc_weight": np.ones(len(labels)), "llp_mS": np.full(len(labels), 50.0),
            "llp_mH": np.full(len(labels), 600.0), "events": events}
    is_data = np.repeat(rng.integers(0, 2, n_events), jets_per_event)
    cr_probabilities = np.repeat(rng.dirichlet([2, 2, 2], n_events), jets_per_event, axis=0)
    cr = {"is_data": is_data, "mc_weight": np.ones(len(is_data)), "events": events}
    return probabilities, main, cr_probabilities, cr


def test_auc_and_ks_errors_are_bootstrapped_by_event():
    """Errors as the generative models' metrics.json has them. With 4 identical jets per event, the errors
    drawn by event are 2x those drawn by jet (sqrt 4). Each error from 100 replicas is known to 7 %, their
    ratio to 10 %: 1.4-2.6 is 3 of those either side (measured 1.5-2.3 over three samples' 15 ratios)."""
    probabilities, main, cr_probabilities, cr = _classifier_sample(600, 4, 0)
    settings = plots.PlotSettings(bootstrap=100, seed=1)
    by_event = plots.compute_metrics(probabilities, main, cr_probabilities, cr, settings)
    for split in (main, cr):
        del split["events"]
    by_jet = plots.compute_metrics(probabilities, main, cr_probabilities, cr, settings)
    keys = ["auc_sig_vs_qcd_error", "auc_sig_vs_bib_error", "cr_test_ks_sig_error", "cr_test_ks_qcd_error",
            "cr_test_ks_bib_error"]
    for key in keys:
        assert 0 < by_jet[key] and 1.4 < by_event[key] / by_jet[key] < 2.6, (key, by_event[key], by_jet[key])
    assert by_event["bootstrap"]["replicas"] == 100 and "events" in by_event["bootstrap"]["covers"]
    without = plots.compute_metrics(probabilities, main, cr_probabilities, cr, plots.PlotSettings())
    assert not any(key.endswith("_error") for key in without) and "bootstrap" not in without
    json.dumps(by_event, allow_nan=False)


def test_the_auc_error_matches_its_spread_over_independent_test_samples():
    """The bootstrap error estimates how far the AUC of another test sample would lie: over 30 samples
    (1 jet per event) their AUCs scatter by sd, and the mean error is within 0.75-1.35 sd (the sd of 30
    values is known to 13 %: the bounds lie 2.5 of those errors either side of 1)."""
    aucs, errors = [], []
    for seed in range(30):
        probabilities, main, cr_probabilities, cr = _classifier_sample(900, 1, 100 + seed)
        metrics = plots.compute_metrics(probabilities, main, cr_probabilities, cr, plots.PlotSettings(bootstrap=60))
        aucs.append(metrics["auc_sig_vs_qcd"])
        errors.append(metrics["auc_sig_vs_qcd_error"])
    assert 0.75 * np.std(aucs, ddof=1) < np.mean(errors) < 1.35 * np.std(aucs, ddof=1)


def test_an_auc_error_leaves_out_replicas_without_positive_class_weight():
    """Signed weights: 4 signal jets of weight 1, 1, -1, 1 beside 396 QCD jets. A quarter of the replicas
    draw signal weight summing to 0 or less, where no AUC exists: the error had been a bare NaN in
    metrics.json (a division by zero; not JSON). Those replicas are left out; where they are the majority
    (a class of total weight below zero: 74 % of replicas) the error is NaN, null in metrics.json."""
    from pipeline_steps.validate.figure_of_merit import bootstrap_auc_error

    rng = np.random.default_rng(8)
    labels = np.r_[np.zeros(4, int), np.ones(396, int)]
    weights = np.r_[[1.0, 1.0, -1.0, 1.0], np.ones(396)]
    main = {"label": labels, "mc_weight": weights, "llp_mS": np.full(400, 50.0), "llp_mH": np.full(400, 600.0)}
    cr = {"is_data": rng.integers(0, 2, 100), "mc_weight": np.ones(100)}
    metrics = plots.compute_metrics(rng.dirichlet([1, 1, 1], 400), main, rng.dirichlet([1, 1, 1], 100), cr,
                                    plots.PlotSettings(bootstrap=50))
    assert 0 < metrics["auc_sig_vs_qcd_error"] < 1
    json.dumps(metrics, allow_nan=False)
    assert np.isnan(bootstrap_auc_error(rng.random(50), rng.random(3), np.ones(50), np.array([-1.0, -1.0, 1.0]), 50, 0))
