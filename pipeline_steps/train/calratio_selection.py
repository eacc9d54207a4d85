"""Choose the CalRatio epoch to keep (the trainer's ``analyze`` step), and say why.

An epoch is a candidate when the KS distance between data and MC of the BIB output on
control-region validation jets is below ``ks_threshold`` (0.3 in the 2019 trainer): its data/MC
systematics are small. Among candidates the best ``selection_metric`` wins (a column of
history.csv; minimised when it is a loss or a KS distance, maximised otherwise, e.g. an accuracy, and the
other way round for the adversary's own metrics, ``*adv_*`` and ``disc_*``).
If no epoch passes the KS cut, the best epoch overall is kept and the choice is flagged
(``fallback: true``) rather than failing the workflow. An epoch whose classifier gives every validation
jet the same signal probability (``val_signal_spread``) is never chosen: its KS distance is 0 because
it has no shape, and a diverged training's collapsed epoch had been kept as the best.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Mapping

import pandas as pd

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.common.logs import step_logging
from pipeline_steps.common.reproducible import normalise_keras_archive
from pipeline_steps.train.calratio_rnn import epoch_weights_path
from pipeline_steps.train.collapsed_epochs import CONSTANT_SPREAD, SPREAD_COLUMN, informative
from pipeline_steps.validate.ks import MIN_WORTH as KS_MIN_WORTH

LOGGER = logging.getLogger("pipeline_steps.train.calratio_selection")
KS_COLUMN = "ks_bib"


#: Name parts of the adversary's own metrics (``val_adv_loss``, ``adv_acc``, ``disc_loss``...): the classifier is
#: best where the adversary cannot tell data from MC, so these run the other way. An adversary worse than chance
#: (accuracy towards 0) separates too, and would rank well: ``val_loss`` or ``ks_bib`` judge that better.
ADVERSARY_MARKERS = ("adv_", "disc_")


def metric_direction(metric: str) -> str:
    """"min" for losses and KS distances, "max" for accuracies and other scores; the other way round for the
    adversary's own loss and accuracy (``val_adv_acc`` had been maximised: the epoch where the adversary
    separated data from MC best was kept)."""
    lower = "loss" in metric or metric.startswith("ks_")
    if metric not in ("loss", "val_loss") and any(marker in metric for marker in ADVERSARY_MARKERS):
        lower = not lower
    return "min" if lower else "max"


def choose_epoch(history: pd.DataFrame, ks_threshold: float, metric: str) -> dict:
    """The chosen epoch and the reason, from a training history (one row per epoch)."""
    for column in ("epoch", KS_COLUMN, metric):
        if column not in history.columns:
            raise ConfigError(
                f"training.selection_metric / history: column {column!r} not in history "
                f"(columns: {list(history.columns)})"
            )
    if history.empty:
        raise InputError("history.csv has no epochs; nothing to choose from")
    history = history[informative(history)]
    if history.empty:
        raise InputError(f"history.csv: in every epoch the classifier gives all validation jets one signal "
                         f"probability ({SPREAD_COLUMN} <= {CONSTANT_SPREAD:.2g}); the training collapsed: lower "
                         f"training.learning_rate")
    candidates = history[history[KS_COLUMN] < ks_threshold]
    fallback = candidates.empty
    pool = history if fallback else candidates
    pool = pool[pool[metric].notna()]
    if pool.empty:
        raise InputError(f"history.csv: metric {metric!r} is NaN in every candidate epoch")
    direction = metric_direction(metric)
    best = pool.loc[pool[metric].idxmin() if direction == "min" else pool[metric].idxmax()]
    epoch = int(best["epoch"])
    reason = (
        f"epoch {epoch} has the {'lowest' if direction == 'min' else 'highest'} {metric} "
        f"({best[metric]:.5g}) among {len(pool)} "
        + (f"epochs; NO epoch had {KS_COLUMN} < {ks_threshold}, so the KS cut was not applied"
           if fallback and history[KS_COLUMN].notna().any() else
           f"epochs; {KS_COLUMN} could not be computed in any epoch (control-region validation data or MC worth "
           f"fewer than {KS_MIN_WORTH:g} jets), so the KS cut was not applied" if fallback
           else f"candidate epochs with {KS_COLUMN} < {ks_threshold}")
    )
    return {
        "epoch": epoch,
        "metric": metric,
        "direction": direction,
        "value": float(best[metric]),
        KS_COLUMN: float(best[KS_COLUMN]),
        "ks_threshold": float(ks_threshold),
        "candidates": [int(e) for e in candidates["epoch"]],
        "fallback": bool(fallback),
        "reason": reason,
    }


def run(history, final_model, selection, chosen_model, model: Mapping, checkpoint_dir, log=None) -> None:
    """Snakemake entry: choose the epoch, write selection.json and the chosen epoch as .keras."""
    with step_logging(log):
        training = dict(model["training"])
        choice = choose_epoch(pd.read_csv(history), float(training.get("ks_threshold", 0.3)),
                              training.get("selection_metric", "val_loss"))
        LOGGER.info("%s", choice["reason"])
        if choice["fallback"]:
            LOGGER.warning("no epoch passed the BIB KS cut; kept the best epoch overall")
        weights = epoch_weights_path(checkpoint_dir, choice["epoch"])
        choice["weights"] = str(weights)
        save_chosen_model(final_model, weights, chosen_model)
        write_text_atomic(selection, json.dumps(_finite(choice), indent=2))


def save_chosen_model(final_model_path, weights_path, chosen_model_path) -> None:
    """The final model's architecture with the chosen epoch's weights, as a safe-mode .keras file."""
    import keras

    if not Path(weights_path).exists():
        raise InputError(f"{weights_path}: checkpoint of the chosen epoch is missing: the epoch selection reads "
                         f"every epoch's weights from the checkpoint folder, which was removed or emptied after "
                         f"training. Train again (byte-identical): snakemake --profile profiles/local "
                         f"--forcerun train_calratio_rnn <target>")
    model = keras.saving.load_model(final_model_path, safe_mode=True)
    model.load_weights(weights_path)
    with atomic_path(chosen_model_path, suffix=".keras") as tmp:
        model.save(tmp)
        normalise_keras_archive(tmp)


def _finite(record: Mapping) -> dict:
    """JSON has no NaN: write None instead."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
