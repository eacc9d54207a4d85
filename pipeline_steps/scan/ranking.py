"""Ranking of a scan's points by a validation figure of merit, and the pointer to the best one.

The SHiP study compared grid points by eye; here the gather rule ``rank_scan`` reads each instance's
``results/validate/<instance>/metrics.json`` (and ``results/train/<instance>/history.csv`` for the
validation loss) and orders the points, best first:

- ``auc`` (default): BDT real-vs-generated AUC; best is closest to 0.5 (score ``|auc - 0.5|``);
- ``chi2_ndf``: reduced chi2 of the real vs generated BDT output histograms, lower is better;
- ``overlap``: overlap of the real and generated BDT output histograms, higher is better;
- ``validation_loss``: the lowest validation loss of the training history (flow ``validation_loss``,
  CalRatio ``val_loss``, GAN ``referee_validation_loss`` where higher means harder to tell apart);
- ``ks``: CalRatio control-region data/MC KS distance, the worst of the three outputs, lower is better.

``best.json`` names the best instance and its train/export folders: the model's own name points at a
trained instance, nothing is retrained.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.train.collapsed_epochs import informative

__all__ = ["metric_value", "rank_points", "best_pointer"]

_HISTORY_LOSS = {"flow": ("validation_loss", "min"), "calratio_rnn": ("val_loss", "min"),
                 "covariance_gan": ("referee_validation_loss", "max")}


def metric_value(metric: str, kind: str, metrics: Mapping[str, Any], history: pd.DataFrame | None) -> tuple[float, float]:
    """(raw value, score) of one point; a lower score is better. NaN when the metric is unavailable."""
    if metric in ("auc", "chi2_ndf", "overlap"):
        value = _number(metrics.get(metric))
        return value, {"auc": abs(value - 0.5), "chi2_ndf": value, "overlap": -value}[metric]
    if metric == "ks":
        values = [float(v) for k, v in metrics.items() if k.startswith("cr_test_ks_")]
        if not values:
            raise InputError(f"metric ks: no cr_test_ks_* entries in metrics.json (only CalRatio has them); "
                             f"found {sorted(metrics)}")
        value = max(values)
        return value, value
    if metric == "validation_loss":
        column, mode = _HISTORY_LOSS[kind]
        if history is None or column not in history:
            raise InputError(f"metric validation_loss: history.csv has no column {column!r}")
        series = history.loc[informative(history), column].astype(float)  # a collapsed epoch ranks nothing
        value = float(series.min() if mode == "min" else series.max()) if len(series) else float("nan")
        return value, value if mode == "min" else -value
    raise ConfigError(f"scan.metric: expected one of auc, chi2_ndf, overlap, validation_loss, ks; got {metric!r}")


def _number(value: Any) -> float:
    """A metric as a float; NaN when validation reported it as not computable (``null``)."""
    return float("nan") if value is None else float(value)


def rank_points(rows: Sequence[Mapping[str, Any]], points: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Rows {instance, value, score} + the point's hyperparameters, best (lowest score) first, NaN last."""
    frame = pd.DataFrame(list(rows))
    for key in sorted({k for point in points.values() for k in point}):
        frame[key] = [_cell(points[name].get(key)) for name in frame["instance"]]
    frame = frame.sort_values(["score", "instance"], na_position="last", kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    return frame


def best_pointer(ranking: pd.DataFrame, model: str, metric: str) -> dict[str, Any]:
    """The best instance and where its outputs are: the model's own name points there."""
    best = ranking.iloc[0]
    if not math.isfinite(float(best["score"])):
        raise InputError(f"scan of {model}: no point has a finite {metric}; cannot pick a best point")
    instance = str(best["instance"])
    return {"model": model, "best": instance, "metric": metric, "value": float(best["value"]),
            "train": f"results/train/{instance}", "export": f"results/export/{instance}"}


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value
