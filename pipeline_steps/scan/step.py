"""The ``rank_scan`` rule: read each scan point's metrics and history, rank, point at the best, plot.

The ranking itself (metric per point, order, best pointer) is in :mod:`pipeline_steps.scan.ranking`;
this module only reads and writes files.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.figures import save_figure
from pipeline_steps.common.logs import step_logging
from pipeline_steps.scan.ranking import best_pointer, metric_value, rank_points, shared_floor_errors

__all__ = ["run"]


LOGGER = logging.getLogger(__name__)


def run(*, metrics: Sequence[str], histories: Sequence[str], scan: Mapping[str, Any], ranking: str, best: str,
        plot: str, log: str | None = None, selections: Sequence[str] = ()) -> None:
    """Rule entry point: inputs are in the order of ``scan['points']``; ``selections`` (CalRatio only) are
    the epoch selections, whose chosen epoch is the model a validation loss is read for."""
    with step_logging(log):
        rows = []
        kept = [json.loads(Path(path).read_text())["epoch"] for path in selections] or [None] * len(metrics)
        documents = [json.loads(Path(path).read_text()) for path in metrics]
        for instance, document, history_path, epoch in zip(scan["points"], documents, histories, kept, strict=True):
            history = pd.read_csv(history_path) if Path(history_path).exists() else None
            value, error, score = metric_value(scan["metric"], scan["kind"], document, history, epoch)
            reason = None if math.isfinite(score) else _why_no_value(scan["metric"], scan["kind"], document)
            rows.append({"instance": instance, "value": value, "error": error, "score": score, "reason": reason})
        tie_errors = shared_floor_errors(scan["metric"], documents)
        if tie_errors is not None:
            for row, tie_error in zip(rows, tie_errors):
                row["tie_error"] = tie_error
        table = rank_points(rows, scan["points"])
        with atomic_path(ranking) as tmp:
            table.to_csv(tmp, index=False)
        pointer = best_pointer(table, scan["model"], scan["metric"])
        write_text_atomic(best, json.dumps(pointer, indent=2) + "\n")
        _plot(table, scan["points"], scan["metric"], plot)
        LOGGER.info("scan %s: best %s (%s = %.4g) of %d points", scan["model"], pointer["best"], scan["metric"],
                    pointer["value"], len(table))


def _why_no_value(metric: str, kind: str, document: Mapping[str, Any]) -> str:
    """Why a point has no value: the figure of merit's own reason for its metrics, else what is missing."""
    if metric in ("auc", "chi2_ndf", "overlap"):
        return document.get("reason") or f"no {metric} in metrics.json"
    if metric == "ks":  # the CalRatio validation says why a KS is null
        reasons = [why for key, why in (document.get("not_computed") or {}).items() if key.startswith("cr_test_ks_")]
        return reasons[0] if reasons else "no finite control-region KS in metrics.json"
    if kind == "calratio_rnn":
        return "the selected epoch's classifier collapsed (or its val_loss is not finite)"
    return "the last epoch's validation loss is not finite"


def _plot(table: pd.DataFrame, points: Mapping[str, Mapping[str, Any]], metric: str, path: str) -> None:
    """The metric against each scanned hyperparameter (one panel per key; categorical axes when not numeric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for point in points.values() for k in point})
    shown, label = ("score", "AUC - real-vs-real floor") if metric == "auc" else ("value", metric)
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        present = table[table[key].notna()]
        x = present[key]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x):
            x = x.astype(str)
        ax.errorbar(x, present[shown], yerr=present["error"].fillna(0.0), fmt="o", capsize=2)
        best = table.iloc[0]
        if pd.notna(best[key]):
            ax.scatter([best[key] if not isinstance(x.iloc[0], str) else str(best[key])], [best[shown]],
                       color="red", label=f"best: {best['instance']}")
            ax.legend(fontsize=6)
        ax.set_xlabel(key)
        ax.set_ylabel(label)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
