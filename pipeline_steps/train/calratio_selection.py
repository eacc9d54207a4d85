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
from pipeline_steps.common.reproducible import keras_archive_entries, write_keras_archive
from pipeline_steps.train.calratio_rnn import epoch_weights_path
from pipeline_steps.train.collapsed_epochs import CONSTANT_SPREAD, SPREAD_COLUMN, informative
from pipeline_steps.validate.ks import MIN_WORTH as KS_MIN_WORTH

LOGGER = logging.getLogger("pipeline_steps.train.calratio_selection")
KS_COLUMN = "ks_bib"
#: The entry of a Keras 3 ``.keras`` archive that holds the variables.
KERAS_WEIGHTS_ENTRY = "model.weights.h5"
#: What to run when the training's outputs are missing or damaged.
RETRAIN = "snakemake --profile profiles/local --forcerun train_calratio_rnn <target>"


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
    """The final model's ``.keras`` archive with its weights swapped for the chosen epoch's.

    Why not load the model and save it with Keras: a ``.keras`` archive is a zip of ``config.json``,
    ``metadata.json`` and ``model.weights.h5``, and ``save_weights`` writes the epoch's weights in the
    layout of that entry (Keras's ``H5IOStore``, the same variable paths and attributes). Loading and
    saving cost TensorFlow's import and a rebuild of the three LSTMs: the job, forced alone, took 8.6-9.3 s
    of Snakemake's elapsed time, 2.7-3.0 s with the swap (AVX2 EPYC, 2026-12-07), and Keras loads the same
    weights to the bit from either archive (tests/test_calratio_selection.py).
    The swap is refused unless the epoch's file holds the final model's variables (path, shape, dtype),
    so weights of another architecture cannot go into the archive to fail in a later job.
    """
    import zipfile

    final_model_path, weights_path = Path(final_model_path), Path(weights_path)
    if not weights_path.exists():
        raise InputError(f"{weights_path}: checkpoint of the chosen epoch is missing: the epoch selection reads "
                         f"every epoch's weights from the checkpoint folder, which was removed or emptied after "
                         f"training. Train again (byte-identical): {RETRAIN}")
    try:
        entries = keras_archive_entries(final_model_path)
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"{final_model_path}: cannot be read as a .keras archive ({error}); expected the "
                         f"classifier that train_calratio_rnn saves. Train again: {RETRAIN}") from error
    final_weights = next((data for info, data in entries if info.filename == KERAS_WEIGHTS_ENTRY), None)
    if final_weights is None:
        raise InputError(f"{final_model_path}: no {KERAS_WEIGHTS_ENTRY} in this .keras archive; expected the "
                         f"classifier that train_calratio_rnn saves (Keras 3 format)")
    chosen_weights = weights_path.read_bytes()
    _require_same_variables(final_model_path, final_weights, weights_path, chosen_weights)
    with atomic_path(chosen_model_path, suffix=".keras") as tmp:
        write_keras_archive(tmp, [(info, chosen_weights if info.filename == KERAS_WEIGHTS_ENTRY else data)
                                  for info, data in entries])


def _require_same_variables(final_model_path: Path, final_weights: bytes, weights_path: Path, weights: bytes) -> None:
    """Refuse weights whose variables differ from the final model's, naming the first that does."""
    final = _variables(final_weights, f"{final_model_path}:{KERAS_WEIGHTS_ENTRY}")
    chosen = _variables(weights, weights_path)
    if final == chosen:
        return
    differing = sorted(set(final.items()) ^ set(chosen.items()))[0][0]
    raise InputError(f"{weights_path}: its variables are not those of {final_model_path} (first difference: "
                     f"{differing!r}: {chosen.get(differing, 'absent')} in the checkpoint, "
                     f"{final.get(differing, 'absent')} in the model); expected the checkpoints of the training "
                     f"that saved this model. Train again: {RETRAIN}")


def _variables(h5_bytes: bytes, source: str | Path) -> dict[str, tuple]:
    """Path -> (shape, dtype) of every dataset in an HDF5 file held in memory; ``source`` names it in errors."""
    import io

    import h5py

    found = {}

    def record(name, node):
        if isinstance(node, h5py.Dataset):
            found[name] = (node.shape, str(node.dtype))

    try:
        with h5py.File(io.BytesIO(h5_bytes), "r") as store:
            store.visititems(record)
    except OSError as error:
        raise InputError(f"{source}: cannot be read as Keras weights (HDF5: {error}); the file is damaged or "
                         f"not written by Keras's save_weights. Train again: {RETRAIN}") from error
    return found


def _finite(record: Mapping) -> dict:
    """JSON has no NaN: write None instead."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
