"""Final CalRatio plots and metrics on the test sample, with the chosen epoch's classifier.

What a physicist checks before using the network: does each output separate its class (output
distributions per class, linear and log), do data and MC agree in the control region in bins of
jet pT (the adversary's job; KS distances), how much QCD and BIB are rejected at a given signal
efficiency (ROC, AUC), where the S/sqrt(B) optimum lies, how the signal efficiency at that cut
varies with the LLP masses (mS, mH), and whether the main and control-region inputs look alike
(the trainer's ``plot`` command). Weights are the signal/QCD-equalised ``mc_weight``, so S/sqrt(B)
is relative, not an expected yield.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline_steps.common.atomic import write_text_atomic
from pipeline_steps.common.figures import save_figure
from pipeline_steps.common.logs import step_logging
from pipeline_steps.models import calratio_rnn as net
from pipeline_steps.validate.figure_of_merit import bootstrap_auc_error
from pipeline_steps.validate.ks import KS_COLUMNS, bootstrap_ks_error, ks_per_output
from pipeline_steps.validate.ks import MIN_WORTH as KS_MIN_WORTH
from pipeline_steps.validate.resampling import subset
from pipeline_steps.validate.weighted_roc import weighted_roc

LOGGER = logging.getLogger("pipeline_steps.validate.calratio_plots")
OUTPUT_LABELS = ("signal output", "QCD output", "BIB output")
CLASS_COLORS = ("tab:red", "tab:blue", "tab:green")
#: TensorFlow's threads for the test-split predictions: the rule's ``threads``. One, as the trainings: a
#: few thousand jets predict in under a second, and a one-core job starts beside another on 2 cores.
PLOT_THREADS = 1
PLOT_NAMES = (
    "outputs_linear", "outputs_log", "cr_data_mc_pt_bins", "roc", "soverb", "signal_efficiency_mass_plane",
    "inputs_main_vs_cr", "training_history",
)


@dataclass(frozen=True)
class PlotSettings:
    """Plot binning, the inference batch size, and the bootstrap of the metrics' errors."""

    bins: int = 40
    batch_size: int = 512
    n_pt_bins: int = 3
    n_thresholds: int = 101
    pad_value: float = 0.0
    bootstrap: int = 0  # replicas for the AUC and KS errors (validation.bootstrap); 0: no errors
    seed: int = 0


#: What the errors of metrics.json mean, written into it (as the generative models' metrics.json does).
ERRORS_COVER = ("auc_sig_vs_*_error, cr_test_ks_*_error: standard deviation over bootstrap replicas of the test "
                "jets, each class drawn by its events (all jets of a drawn event together), the classifier fixed")


#: Background jets (Kish n_eff, so NLO weights that cancel count for little) a cut must keep for its S/sqrt(B):
#: B from n_eff jets has a relative error of 1/sqrt(n_eff), so S/sqrt(B) one of 1/(2 sqrt(n_eff)), 16 % at 10.
#: Without it the optimum sat where 5 QCD jets, one of weight -1, nearly cancelled (S/sqrt(B) 86 at one cut).
MIN_BACKGROUND_JETS = 10.0


def soverb_scan(scores, is_signal, weights, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """S/sqrt(B) for ``scores > threshold`` at each threshold and the signal efficiency; 0 where the kept
    background is worth fewer than ``MIN_BACKGROUND_JETS`` jets or its weights do not sum above 0."""
    scores, is_signal, weights = np.asarray(scores), np.asarray(is_signal, bool), np.asarray(weights, np.float64)
    passed = scores[None, :] > np.asarray(thresholds)[:, None]
    signal = (passed & is_signal[None, :]) @ weights
    kept_background = passed & ~is_signal[None, :]
    background = kept_background @ weights
    squares = kept_background @ np.square(weights)
    worth = np.divide(np.square(background), squares, out=np.zeros_like(background), where=squares > 0)
    usable = (background > 0) & (worth >= MIN_BACKGROUND_JETS)
    significance = np.divide(signal, np.sqrt(np.clip(background, 0, None)), out=np.zeros_like(signal), where=usable)
    signal_total = float(weights[is_signal].sum())
    efficiency = signal / signal_total if signal_total > 0 else np.full_like(signal, np.nan)
    return significance, efficiency


def _roc_problem(labels: np.ndarray, weights: np.ndarray, background: int, name: str) -> str | None:
    """Why signal (label 0) vs ``background`` has no ROC: a class without jets, or whose (NLO) weights sum
    to <= 0, which leaves its efficiencies undefined."""
    for label, what in ((0, "signal"), (background, name.upper())):
        chosen = labels == label
        if not chosen.any():
            return f"the test split has no {what} jets"
        if float(np.sum(weights[chosen])) <= 0:
            return f"the weights of the {what} jets sum to {float(np.sum(weights[chosen])):g}"
    return None


def signal_efficiency_by_mass(scores, weights, mass_s, mass_h, threshold: float) -> pd.DataFrame:
    """Weighted fraction of signal jets with ``scores > threshold`` per (mS, mH) point."""
    frame = pd.DataFrame({"mS": mass_s, "mH": mass_h, "w": weights, "passed_w": weights * (np.asarray(scores) > threshold)})
    frame = frame.dropna(subset=["mS", "mH"])
    grouped = frame.groupby(["mS", "mH"], as_index=False)[["w", "passed_w"]].sum()
    grouped["efficiency"] = grouped["passed_w"] / grouped["w"].where(grouped["w"] > 0)
    grouped["n_jets"] = frame.groupby(["mS", "mH"]).size().to_numpy()
    return grouped[["mS", "mH", "efficiency", "n_jets"]]


def compute_metrics(main_probabilities, main, cr_probabilities, cr, settings: PlotSettings) -> dict:
    """AUCs (signal vs QCD, vs BIB), CR data/MC KS of each output, the S/sqrt(B) optimum, efficiencies."""
    metrics = {"n_test_jets": int(len(main["label"])), "n_cr_test_jets": int(len(cr["is_data"]))}
    if settings.bootstrap >= 2:
        metrics["bootstrap"] = {"replicas": settings.bootstrap, "covers": ERRORS_COVER}
    for background, name in ((1, "qcd"), (2, "bib")):
        rows = np.isin(main["label"], (0, background))
        problem = _roc_problem(main["label"][rows], main["mc_weight"][rows], background, name)
        if problem is None:
            metrics[f"auc_sig_vs_{name}"] = weighted_roc(main_probabilities[rows, 0], main["label"][rows] == 0, main["mc_weight"][rows])[2]
            if settings.bootstrap >= 2:  # NaN (is not JSON): null, too few replicas with positive class weights
                error = _auc_error(main_probabilities[rows, 0], main, rows, settings)
                metrics[f"auc_sig_vs_{name}_error"] = None if np.isnan(error) else error
        else:  # say why the key is missing (a sample without BIB jets)
            metrics.setdefault("not_computed", {})[f"auc_sig_vs_{name}"] = problem
    for key, value in ks_per_output(cr_probabilities, cr["is_data"], cr["mc_weight"]).items():
        metrics[f"cr_test_{key}"] = None if np.isnan(value) else value  # NaN is not JSON: null and why
        if np.isnan(value):
            metrics.setdefault("not_computed", {})[f"cr_test_{key}"] = (
                f"the control region's test data or MC jets are worth fewer than {KS_MIN_WORTH:g} unweighted jets "
                f"(Kish n_eff; data {int(np.sum(cr['is_data'] == 1))}, MC {int(np.sum(cr['is_data'] == 0))} jets)")
        elif settings.bootstrap >= 2:
            error = _ks_error(cr_probabilities[:, KS_COLUMNS[key]], cr, settings)
            metrics[f"cr_test_{key}_error"] = None if np.isnan(error) else error
    thresholds = np.linspace(0.0, 1.0, settings.n_thresholds)[:-1]
    significance, efficiency = soverb_scan(main_probabilities[:, 0], main["label"] == 0, main["mc_weight"], thresholds)
    best = int(np.argmax(significance))
    problem = _soverb_problem(significance, efficiency)
    if problem is not None:  # a 0.0 at threshold 0 had read as a measured optimum
        metrics.update({"best_soverb": None, "best_threshold": None, "signal_efficiency_at_best": None})
        metrics.setdefault("not_computed", {})["best_soverb"] = problem
        LOGGER.warning("S/sqrt(B) not computed: %s", problem)
        return _with_mass_plane(metrics, main_probabilities, main, thresholds[0])
    metrics.update({"best_soverb": float(significance[best]), "best_threshold": float(thresholds[best]),
                    "signal_efficiency_at_best": float(efficiency[best])})
    unmeasured = (significance[best + 1:] == 0) & (efficiency[best + 1:] > 0)
    if unmeasured.any():  # a near-perfect classifier on a small test split: the optimum may lie up there
        metrics["soverb_note"] = (f"cuts above {thresholds[best]:.2f} keep background worth fewer than "
                                  f"{MIN_BACKGROUND_JETS:g} jets (or none): S/sqrt(B) is not measured there, and the "
                                  f"optimum may lie beyond what these {metrics['n_test_jets']} test jets can tell")
        LOGGER.warning("%s", metrics["soverb_note"])
    return _with_mass_plane(metrics, main_probabilities, main, thresholds[best])


def _auc_error(signal_scores: np.ndarray, main: Mapping, rows: np.ndarray, settings: PlotSettings) -> float:
    """The bootstrap error of one AUC: background jets as the negatives, signal as the positives, each
    class drawn by its own events (``main["events"]``, by jet without it)."""
    signal = main["label"][rows] == 0
    weights, events = main["mc_weight"][rows], _events(main, rows)
    return bootstrap_auc_error(signal_scores[~signal], signal_scores[signal], weights[~signal], weights[signal],
                               settings.bootstrap, settings.seed, subset(events, ~signal), subset(events, signal))


def _ks_error(scores: np.ndarray, cr: Mapping, settings: PlotSettings) -> float:
    data = np.asarray(cr["is_data"]) == 1
    events = _events(cr, slice(None))
    return bootstrap_ks_error(scores[data], scores[~data], cr["mc_weight"][data], cr["mc_weight"][~data],
                              settings.bootstrap, settings.seed, subset(events, data), subset(events, ~data))


def _events(split: Mapping, rows) -> np.ndarray | None:
    return split["events"][rows] if "events" in split else None


def _soverb_problem(significance: np.ndarray, efficiency: np.ndarray) -> str | None:
    """Why no cut has an S/sqrt(B): no signal weight, or no cut keeps background worth enough jets."""
    if np.isnan(efficiency).all():
        return "the test split's signal jets have no positive total weight"
    if not (significance > 0).any():
        return (f"no cut keeps signal and background worth {MIN_BACKGROUND_JETS:g} unweighted jets (Kish n_eff) "
                f"in the test split")
    return None


def _with_mass_plane(metrics: dict, main_probabilities, main, threshold: float) -> dict:
    """``metrics`` with the signal efficiency per (mS, mH) at ``threshold``."""
    signal = main["label"] == 0
    by_mass = signal_efficiency_by_mass(main_probabilities[signal, 0], main["mc_weight"][signal],
                                        main["llp_mS"][signal], main["llp_mH"][signal], threshold)
    metrics["signal_efficiency_by_mass"] = [
        {k: (None if pd.isna(v) else float(v)) for k, v in row.items()} for row in by_mass.to_dict("records")
    ]
    return metrics


def run(chosen_model, preprocess_dir, history, selection, outputs: Mapping[str, str], model: Mapping,
        identity: Mapping[str, Sequence[str]] | None = None, bootstrap: Mapping[str, int] | None = None,
        log=None) -> None:
    """Snakemake entry: predict on the test splits, draw every plot, write metrics.json.

    ``identity``: the main and control datasets' identity branches (``identity``, ``control_identity``),
    by which the errors' bootstrap draws events; ``bootstrap``: ``{"replicas", "seed"}``."""
    import keras

    with step_logging(log):
        net.configure_tensorflow(PLOT_THREADS)
        from pipeline_steps.preprocess.calratio_inputs import load_split

        hyper = net.CalRatioHyperparameters.from_config(model.get("hyperparameters", {}))
        bootstrap = bootstrap or {}
        settings = PlotSettings(batch_size=int(model["training"].get("batch_size", 512)),
                                pad_value=float(model.get("preprocessing", {}).get("pad_value", 0.0)),
                                bootstrap=int(bootstrap.get("replicas", 0)), seed=int(bootstrap.get("seed", 0)))
        classifier = keras.saving.load_model(chosen_model, safe_mode=True)
        identity = identity or {}
        main = load_split(preprocess_dir, "test", region="main", identity=identity.get("identity"))
        cr = load_split(preprocess_dir, "test", region="cr", identity=identity.get("control_identity"))
        classify = net.inference(classifier)  # one trace for both regions
        main_probabilities = net.predict(classifier, main, hyper.use_llp_parameters, settings.batch_size, classify)
        cr_probabilities = net.predict(classifier, cr, hyper.use_llp_parameters, settings.batch_size, classify)
        choice = json.loads(Path(selection).read_text())
        metrics = {"chosen_epoch": choice["epoch"], **compute_metrics(main_probabilities, main, cr_probabilities, cr, settings)}
        figures = draw_all(main_probabilities, main, cr_probabilities, cr, pd.read_csv(history), choice,
                           metrics, list(model.get("conditions", [])), settings)
        for name, figure in figures.items():
            figure.tight_layout()
            save_figure(figure, outputs[name], dpi=90, format="png")
        write_text_atomic(outputs["metrics"], json.dumps(metrics, indent=2, allow_nan=False))
        LOGGER.info("calratio test metrics: %s", {k: v for k, v in metrics.items() if k != "signal_efficiency_by_mass"})


def draw_all(main_probabilities, main, cr_probabilities, cr, history, selection, metrics, jet_feature_names, settings) -> dict:
    """Every figure, keyed by PLOT_NAMES."""
    return {
        "outputs_linear": _outputs_by_class(main_probabilities, main, settings, log_scale=False),
        "outputs_log": _outputs_by_class(main_probabilities, main, settings, log_scale=True),
        "cr_data_mc_pt_bins": _cr_data_mc(cr_probabilities, cr, settings),
        "roc": _roc(main_probabilities, main, metrics),
        "soverb": _soverb(main_probabilities, main, settings),
        "signal_efficiency_mass_plane": _efficiency_plane(metrics),
        "inputs_main_vs_cr": _inputs_main_vs_cr(main, cr, jet_feature_names, settings),
        "training_history": _history(history, selection),
    }


def _figure(n_rows: int, n_cols: int, width: float = 4.0, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False)
    return figure, axes


def _outputs_by_class(probabilities, main, settings: PlotSettings, log_scale: bool):
    figure, axes = _figure(1, 3)
    bins = np.linspace(0, 1, settings.bins + 1)
    for output, axis in enumerate(axes[0]):
        for label, (name, color) in enumerate(zip(net.CLASS_NAMES, CLASS_COLORS)):
            rows = main["label"] == label
            if rows.any():
                axis.hist(probabilities[rows, output], bins=bins, weights=main["mc_weight"][rows], density=True,
                          histtype="step", color=color, label=f"{name} jets")
        axis.set(xlabel=OUTPUT_LABELS[output], ylabel="normalised", yscale="log" if log_scale else "linear")
        axis.legend(fontsize="small")
    return figure


def _cr_data_mc(probabilities, cr, settings: PlotSettings):
    edges = np.quantile(cr["jet_pt"], np.linspace(0, 1, settings.n_pt_bins + 1))
    figure, axes = _figure(settings.n_pt_bins, 3)
    bins = np.linspace(0, 1, settings.bins + 1)
    for row, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        in_bin = (cr["jet_pt"] >= low) & ((cr["jet_pt"] < high) if row < settings.n_pt_bins - 1 else (cr["jet_pt"] <= high))
        ks = ks_per_output(probabilities[in_bin], cr["is_data"][in_bin], cr["mc_weight"][in_bin])
        for output, axis in enumerate(axes[row]):
            for is_data, name, color in ((1, "data", "black"), (0, "multijet MC", "tab:blue")):
                rows = in_bin & (cr["is_data"] == is_data)
                if rows.any():
                    axis.hist(probabilities[rows, output], bins=bins, weights=cr["mc_weight"][rows], density=True,
                              histtype="step", color=color, label=name)
            axis.set(xlabel=OUTPUT_LABELS[output], ylabel="density", yscale="log",
                     title=f"pT {low:.0f}-{high:.0f} GeV, KS {list(ks.values())[output]:.3f}")
            axis.legend(fontsize="small")
    return figure


def _roc(probabilities, main, metrics):
    figure, axes = _figure(1, 2)
    for axis, (background, name) in zip(axes[0], ((1, "qcd"), (2, "bib"))):
        rows = np.isin(main["label"], (0, background))
        if f"auc_sig_vs_{name}" in metrics:
            efficiency, mistag, auc = weighted_roc(probabilities[rows, 0], main["label"][rows] == 0, main["mc_weight"][rows])
            keep = mistag > 0
            axis.plot(efficiency[keep], 1.0 / mistag[keep], label=f"AUC {auc:.3f}")
            axis.legend()
        else:  # the reason is in metrics.json's not_computed; an empty panel had said nothing
            axis.text(0.5, 0.5, f"no ROC: {(metrics.get('not_computed') or {}).get(f'auc_sig_vs_{name}', 'not computed')}",
                      ha="center", va="center", wrap=True, fontsize="small", transform=axis.transAxes)
        axis.set(xlabel="signal efficiency", ylabel=f"{name.upper()} rejection", yscale="log", title=f"signal vs {name.upper()}")
    return figure


def _soverb(probabilities, main, settings: PlotSettings):
    figure, axes = _figure(1, 1, width=5.5)
    thresholds = np.linspace(0.0, 1.0, settings.n_thresholds)[:-1]
    for backgrounds, name in (((1, 2), "QCD + BIB"), ((1,), "QCD only"), ((2,), "BIB only")):
        rows = np.isin(main["label"], (0, *backgrounds))
        significance, _ = soverb_scan(probabilities[rows, 0], main["label"][rows] == 0, main["mc_weight"][rows], thresholds)
        axes[0, 0].plot(thresholds, significance, label=name)
    axes[0, 0].set(xlabel="cut on signal output", ylabel="S / sqrt(B) (relative)")
    axes[0, 0].legend()
    return figure


def _efficiency_plane(metrics):
    figure, axes = _figure(1, 1, width=5.5, height=4.5)
    axis = axes[0, 0]
    points = [p for p in metrics["signal_efficiency_by_mass"] if p["efficiency"] is not None]
    if points:
        m_s, m_h, efficiency = (np.array([p[k] for p in points]) for k in ("mS", "mH", "efficiency"))
        image = axis.scatter(m_h, m_s, c=efficiency, s=400, vmin=0, vmax=1, cmap="viridis")
        for x, y, value in zip(m_h, m_s, efficiency):
            axis.annotate(f"{value:.2f}", (x, y), ha="center", va="center", fontsize="small", color="white")
        figure.colorbar(image, ax=axis, label="signal efficiency")
    else:
        axis.text(0.5, 0.5, "no signal jets with (mS, mH)", ha="center", transform=axis.transAxes)
    threshold = metrics["best_threshold"]  # None: no S/sqrt(B) optimum, the plane is drawn at the lowest cut
    axis.set(xlabel="mH [GeV]", ylabel="mS [GeV]",
             title=f"signal efficiency at output > {threshold or 0.0:.2f}"
                   + ("" if threshold is not None else " (no S/sqrt(B) optimum)"))
    return figure


def _inputs_main_vs_cr(main, cr, jet_feature_names, settings: PlotSettings):
    n_jet = main["jets"].shape[1]
    names = jet_feature_names if len(jet_feature_names) == n_jet else [f"jet feature {i}" for i in range(n_jet)]
    panels = [(name, main["jets"][:, i], cr["jets"][:, i]) for i, name in enumerate(names)]
    panels += [(f"number of {seq}", _n_objects(main[seq], settings.pad_value), _n_objects(cr[seq], settings.pad_value)) for seq in net.SEQUENCE_NAMES]
    n_cols = 4
    figure, axes = _figure(int(np.ceil(len(panels) / n_cols)), n_cols)
    for axis, (name, main_values, cr_values) in zip(axes.flat, panels):
        bins = np.histogram_bin_edges(np.concatenate([main_values, cr_values]), bins=settings.bins)
        axis.hist(main_values, bins=bins, density=True, histtype="step", label="main")
        axis.hist(cr_values, bins=bins, density=True, histtype="step", label="control region")
        axis.set(xlabel=name if name.startswith("number of") else f"{name} (as the network sees it)")
        axis.legend(fontsize="small")
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    return figure


def _n_objects(sequences, pad_value: float) -> np.ndarray:
    return np.any(sequences != pad_value, axis=-1).sum(axis=1)


def _history(history: pd.DataFrame, selection: Mapping):
    figure, axes = _figure(2, 2)
    panels = (
        ("classifier loss", ("main_loss", "val_main_loss")),
        ("adversary loss", ("disc_loss", "adv_loss", "val_adv_loss")),
        ("accuracy", ("main_acc", "val_main_acc", "disc_acc", "val_adv_acc")),
        ("CR data/MC KS", tuple(KS_COLUMNS)),
    )
    for axis, (title, columns) in zip(axes.flat, panels):
        for column in columns:
            if column in history:
                axis.plot(history["epoch"], history[column], marker="o", label=column)
        axis.axvline(selection["epoch"], color="grey", linestyle=":", label="chosen epoch")
        if title == "CR data/MC KS":  # before the legend, so that the legend names it
            axis.axhline(selection["ks_threshold"], color="red", linestyle="--", label="KS threshold")
        axis.set(xlabel="epoch", title=title)
        axis.legend(fontsize="small")
    return figure
