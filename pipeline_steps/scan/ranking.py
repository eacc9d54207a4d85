"""Ranking of a scan's points by a validation figure of merit, and the pointer to the best one.

The SHiP study compared grid points by eye; here the gather rule ``rank_scan`` reads each instance's
``results/validate/<instance>/metrics.json`` (and ``results/train/<instance>/history.csv`` for the
validation loss) and orders the points, best first:

- ``auc`` (default of the generative kinds): BDT real-vs-generated AUC, scored by its excess over the
  real-vs-real floor (``auc_minus_floor``, as the verdict judges it; AUC - 0.5 without a floor), lower
  is better. A held-out AUC below the floor is noise, not a generator the BDT tells apart "the other
  way": the score had been |AUC - 0.5|, which ranked 0.44 behind 0.55;
- ``chi2_ndf``: reduced chi2 of the real vs generated BDT output histograms, lower is better;
- ``overlap``: overlap of the real and generated BDT output histograms, higher is better;
- ``validation_loss``: the validation loss of the epoch the model was kept at: the last for flows and
  the GAN (their trainers keep the last weights; the minimum had ranked an overfitted point by an epoch
  it no longer has), the selected one for CalRatio (``selection.json``); flow ``validation_loss``,
  CalRatio ``val_loss``, GAN ``referee_validation_loss`` where higher means harder to tell apart;
- ``ks`` (CalRatio's default): control-region data/MC KS distance, the worst of the three outputs,
  lower is better, with that output's bootstrap error.

Where the metric has an error (the AUC's, the KS's), ``ranking.csv`` gives it and marks the points whose score is
within the combined error of the best one (``within_error_of_best``; a floor every point shares cancels
in the difference, with its error); ``best.json`` lists them too, so a winner by noise is seen as one.
``best.json`` names the best instance and its train/export folders: the model's own name points at a
trained instance, nothing is retrained (the export folder is made by
the default target, or ``snakemake results/export/<best>/bundle.json``).
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.scan.expansion import METRICS
from pipeline_steps.train.collapsed_epochs import informative
from pipeline_steps.validate.ks import KS_COLUMNS

__all__ = ["metric_value", "rank_points", "best_pointer", "shared_floor_errors"]

_HISTORY_LOSS = {"flow": ("validation_loss", "min"), "calratio_rnn": ("val_loss", "min"),
                 "covariance_gan": ("referee_validation_loss", "max")}


def metric_value(metric: str, kind: str, metrics: Mapping[str, Any], history: pd.DataFrame | None,
                 kept_epoch: int | None = None) -> tuple[float, float, float]:
    """(raw value, error, score) of one point; a lower score is better. NaN when unavailable (error: when
    the metric has none). ``kept_epoch``: the epoch CalRatio's selection chose (None: the last)."""
    nan = float("nan")
    if metric == "auc":
        value, excess = _number(metrics.get("auc")), metrics.get("auc_minus_floor")
        if excess is None:  # no floor: judged as AUC - 0.5, as the verdict does
            return value, _number(metrics.get("auc_error")), value - 0.5
        return value, _number(metrics.get("auc_minus_floor_error")), float(excess)
    if metric in ("chi2_ndf", "overlap"):
        value = _number(metrics.get(metric))
        return value, nan, value if metric == "chi2_ndf" else -value
    if metric == "ks":
        keys = [f"cr_test_{column}" for column in KS_COLUMNS if f"cr_test_{column}" in metrics]
        if not keys:
            raise InputError(f"metric ks: no cr_test_ks_* entries in metrics.json (only CalRatio has them); "
                             f"found {sorted(metrics)}")
        values = [_number(metrics[key]) for key in keys]  # null: not computable
        if any(math.isnan(v) for v in values):  # one output not computable: no score
            return nan, nan, nan
        worst = keys[int(np.argmax(values))]
        return max(values), _number(metrics.get(f"{worst}_error")), max(values)
    if metric == "validation_loss":
        value = _kept_epoch_loss(kind, history, kept_epoch)
        return value, nan, value if _HISTORY_LOSS[kind][1] == "min" else -value
    raise ConfigError(f"scan.metric: expected one of {list(METRICS)}, got {metric!r}")


def _kept_epoch_loss(kind: str, history: pd.DataFrame | None, kept_epoch: int | None) -> float:
    """The validation loss of the epoch the trained model is (NaN when that epoch collapsed)."""
    column = _HISTORY_LOSS[kind][0]
    if history is None or column not in history or "epoch" not in history or not len(history):
        raise InputError(f"metric validation_loss: history.csv has no rows with columns 'epoch' and {column!r}")
    rows = history[history["epoch"] == kept_epoch] if kept_epoch is not None else history.tail(1)
    if not len(rows):
        raise InputError(f"metric validation_loss: the kept epoch {kept_epoch} is not in history.csv")
    return float(rows[column].iloc[0]) if bool(informative(rows).iloc[0]) else float("nan")


def _number(value: Any) -> float:
    """A metric as a float; NaN when validation reported it as not computable (``null``)."""
    return float("nan") if value is None else float(value)


def shared_floor_errors(metric: str, documents: Sequence[Mapping[str, Any]]) -> list[float] | None:
    """Errors of a difference of two points' AUC - floor scores, when every point has the same floor.

    The floor is measured on the real test rows alone, with the validation seed; a scan refuses the keys that
    change those rows, so its points normally share one floor, halving for halving. A difference of scores
    is then a difference of AUCs: the floor and its error cancel, and each point contributes only its own
    AUC's bootstrap error (``auc_error``). Adding the floor's error twice had marked points as tied with the
    best that their AUCs tell apart. None (use each score's full error) for another metric or when the
    floors differ in any halving."""
    if metric != "auc" or not documents:
        return None
    floors = [(document.get("floor") or {}).get("auc_each_halving") for document in documents]
    if floors[0] is None or any(floor != floors[0] for floor in floors):
        return None
    return [_number(document.get("auc_error")) for document in documents]


def rank_points(rows: Sequence[Mapping[str, Any]], points: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Rows {instance, value, score[, error][, tie_error]} + the point's hyperparameters, best (lowest score)
    first, NaN last; ``within_error_of_best`` where errors are known: score - best score <= their errors in
    quadrature (``tie_error``, a point's share of the error of a difference, where it differs from ``error``:
    see :func:`shared_floor_errors`; not a column of the result)."""
    frame = pd.DataFrame(list(rows))
    if "error" not in frame:
        frame["error"] = np.nan
    if "tie_error" not in frame:
        frame["tie_error"] = frame["error"]
    for key in sorted({k for point in points.values() for k in point}):  # object: 16 stays 16 beside a gap
        frame[key] = pd.Series([_cell(points[name].get(key)) for name in frame["instance"]], dtype=object)
    frame = frame.sort_values(["score", "instance"], na_position="last", kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    best_score, best_error = frame["score"].iloc[0], frame["tie_error"].iloc[0]
    tied = frame["score"] - best_score <= np.hypot(frame["tie_error"], best_error)
    frame = frame.drop(columns="tie_error")
    frame.insert(frame.columns.get_loc("score") + 1, "within_error_of_best", tied.where(frame["error"].notna()))
    return frame


def best_pointer(ranking: pd.DataFrame, model: str, metric: str) -> dict[str, Any]:
    """The best instance and where its outputs are: the model's own name points there."""
    best = ranking.iloc[0]
    if not math.isfinite(float(best["score"])):
        raise InputError(f"scan of {model}: no point has a finite {metric}; cannot pick a best point")
    instance = str(best["instance"])
    tied = [str(name) for name, close in zip(ranking["instance"][1:], ranking["within_error_of_best"][1:])
            if pd.notna(close) and bool(close)]
    return {"model": model, "best": instance, "metric": metric, "value": float(best["value"]),
            "within_error_of_best": tied, "train": f"results/train/{instance}",
            "export": f"results/export/{instance}"}


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value
