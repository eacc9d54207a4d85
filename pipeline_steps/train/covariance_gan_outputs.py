"""What the covariance GAN's training leaves in ``results/train/<model>/``: the generator, ``model.json``,
``history.csv``, ``spd.json`` (fraction of generated covariance matrices that are SPD in physical
units), the referee's loss curve and the output-correlations sanity plot.
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.figures import save_figure
from pipeline_steps.common.reproducible import normalise_keras_archive
from pipeline_steps.common.covariance import elements_spd_fraction
from pipeline_steps.train.loss_plot import write_loss_plot

if TYPE_CHECKING:
    from pipeline_steps.train.covariance_gan import GanTrainingConfig, TrainingResult

__all__ = ["HISTORY_COLUMNS", "TIMING_COLUMNS", "spd_evaluator", "physical_spd_fraction", "write_outputs",
           "ideal_losses", "write_gan_loss_plot", "write_correlations_plot"]

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    "epoch",
    "discriminator_loss",
    "generator_loss",
    "referee_train_loss",
    "referee_validation_loss",
    "spd_fraction",
    "seconds",          # wall time of the epoch's updates (not its validation): timing, not reproducible
    "rows_per_second",
]
TIMING_COLUMNS = ("seconds", "rows_per_second")
_PLOT_POINTS = 3_000


def spd_evaluator(transforms_path: str | None, physical_conditions: pd.DataFrame) -> Callable | None:
    """A function generated-targets -> SPD fraction in physical units, or None when unavailable.

    Uses ``pipeline_steps.preprocess.model_transforms.load_transforms``: ``targets.inverse`` then
    ``targets_to_physical`` (which undoes a ``logdiag_corr``/``cholesky`` representation).
    """
    if transforms_path is None:
        return None
    try:
        from pipeline_steps.preprocess.model_transforms import load_transforms
    except ModuleNotFoundError as error:
        logger.warning("SPD fraction not computed: %s", error)
        return None
    fitted = load_transforms(transforms_path)

    def evaluate(generated: np.ndarray) -> float | None:
        return physical_spd_fraction(fitted, generated, physical_conditions.iloc[:len(generated)])

    return evaluate


def physical_spd_fraction(fitted, generated: np.ndarray, physical_conditions: pd.DataFrame) -> float | None:
    """Fraction of generated covariance matrices that are SPD after the inverse transform."""
    targets = fitted.targets.inverse(generated)
    if hasattr(fitted, "targets_to_physical"):
        targets = fitted.targets_to_physical(targets, physical_conditions.reset_index(drop=True))
    return elements_spd_fraction({c: targets[c].to_numpy() for c in targets.columns})



def write_outputs(config: GanTrainingConfig, result: TrainingResult, reference_targets: np.ndarray,
                  final_spd: float | None, *, generator: str, model_json: str, history: str, spd: str,
                  loss_plot: str, correlations_plot: str) -> None:
    """generator.keras, model.json, history.csv, spd.json, loss.png, correlations.png (atomically)."""
    with atomic_path(generator) as tmp:
        result.networks.generator.save(tmp)
        normalise_keras_archive(tmp)
    document = {**config.architecture.to_json(), "seed": config.seed,
                "epochs_trained": int(result.networks.epoch.numpy())}
    write_text_atomic(model_json, json.dumps(document, indent=2) + "\n")
    extra = [c for c in ("learning_rate", "early_stop") if result.history and c in result.history[-1]]
    frame = pd.DataFrame(result.history, columns=HISTORY_COLUMNS + extra)
    write_text_atomic(history, frame.to_csv(index=False, float_format="%.6g"))
    write_text_atomic(spd, json.dumps(_spd_document(final_spd, len(result.generated_validation)), indent=2) + "\n")
    write_gan_loss_plot(frame, config.label_smoothing, loss_plot)
    write_correlations_plot(reference_targets, result.generated_validation,
                            config.architecture.target_names, correlations_plot)


def _spd_document(fraction: float | None, n_matrices: int) -> dict[str, Any]:
    return {
        "spd_fraction": None if fraction is None or math.isnan(fraction) else fraction,
        "n_matrices": n_matrices,
        "split": "validation",
        "definition": "generated cov_ij (i<=j) after transforms.targets.inverse and targets_to_physical, "
                      "stacked into symmetric matrices; SPD = finite and smallest eigenvalue > 0",
    }


def ideal_losses(label_smoothing: float) -> tuple[float, float]:
    """(BCE for identical datasets, BCE floor for perfectly separated ones), in nats."""
    target = 1.0 - label_smoothing / 2.0
    floor = 0.0 if label_smoothing == 0 else -(target * math.log(target) + (1 - target) * math.log(1 - target))
    return math.log(2.0), floor


def write_gan_loss_plot(history: pd.DataFrame, label_smoothing: float, path: str) -> None:
    """Referee BCE per epoch on training and validation data, ln 2 dashed, smoothing floor dotted."""
    identical, floor = ideal_losses(label_smoothing)
    curves = [("referee, training", history["referee_train_loss"], {}),
              ("referee, validation", history["referee_validation_loss"], {})]
    lines = [(identical, f"identical datasets: ln 2 = {identical:.3f}", {"color": "k", "linestyle": "--"}),
             (floor, f"separable floor (smoothing {label_smoothing:g}): {floor:.3f}", {"color": "gray", "linestyle": ":"})]
    write_loss_plot(path, history["epoch"], curves, ylabel="binary cross-entropy [nats]",
                    title="Covariance GAN: referee loss", reference_lines=lines)


def write_correlations_plot(reference: np.ndarray, generated: np.ndarray, names: tuple[str, ...], path: str) -> None:
    """LHCb's sanity plot: consecutive pairs of output features, reference blue, generated orange."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(i, i + 1) for i in range(len(names) - 1)] or [(0, 0)]
    columns = min(4, len(pairs))
    rows = math.ceil(len(pairs) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(max(4.5, 3 * columns), 3 * rows + 0.5), squeeze=False)
    picked = np.random.default_rng(0).permutation(len(reference))[:_PLOT_POINTS]
    for axis, (i, j) in zip(axes.flat, pairs):
        axis.scatter(reference[picked, i], reference[picked, j], s=1, alpha=0.3, color="tab:blue", label="reference")
        axis.scatter(generated[picked, i], generated[picked, j], s=1, alpha=0.3, color="tab:orange", label="generated")
        axis.set(xlabel=names[i] if names else str(i), ylabel=names[j] if names else str(j))
    for axis in list(axes.flat)[len(pairs):]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize="small", markerscale=8)
    figure.suptitle("Output correlations (transformed space)", fontsize="medium")
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
