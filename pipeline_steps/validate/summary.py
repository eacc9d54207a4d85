"""``results/summary.csv``: one line per generative model, the numbers to compare models by.

Training time comes from ``results/train/<model>/history.csv`` when it has a per-epoch time column
(``seconds``, ``epoch_seconds``, ``time_s``, ``duration_s``; summed) or a cumulative one
(``elapsed_s``, ``wall_s``; last value); otherwise the cell is empty. ``status`` is the figure of
merit's: "not computable" when its sample was too small, with empty AUC, chi2 and overlap cells, never
a number. The distances have their own minimum (68 rows, or a Kish n_eff of 68 for weighted rows: in each
real half for a floor, else in the whole real sample, compared without one), so near the limit they can
still be numbers and decide the ``verdict``, the model's
overall pass / warn / fail. ``auc_floor`` is the real-vs-real AUC (mean over ``floor_repeats``
halvings) and ``auc_floor_error`` that mean's error; the distance columns are the values the verdict
judged (``w1_over_std_max``, ``ks_max``: largest over the generated features; see ``verdict.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline_steps.common.atomic import write_text_atomic

PER_EPOCH_TIME = ("seconds", "epoch_seconds", "time_s", "duration_s", "epoch_time_s")
CUMULATIVE_TIME = ("elapsed_s", "wall_s", "elapsed_seconds")
COLUMNS = ["model", "verdict", "status", "auc", "auc_error", "auc_floor", "auc_floor_error", "auc_minus_floor",
           "auc_minus_floor_error", "chi2_ndf", "overlap", "w1_over_std_max", "ks_max", "corr_max_abs", "fpd", "fpd_error",
           "kpd", "kpd_error", "classifier", "rows_train_per_class", "rows_eval_per_class", "reduced", "training_seconds",
           "generated_rows", "generation_rows_per_s"]


def summary_table(metrics: list[str], generation: list[str], train_dirs: list[str]) -> pd.DataFrame:
    """Gather per-model metrics.json, generation.json and history.csv (lists in the same model order)."""
    rows = []
    for metrics_path, generation_path, train_dir in zip(metrics, generation, train_dirs, strict=True):
        fom = json.loads(Path(metrics_path).read_text())
        generated = json.loads(Path(generation_path).read_text())
        rows.append({
            "model": fom["model"], "status": fom.get("status", "ok"), "auc": fom["auc"],
            "auc_error": fom.get("auc_error"), "chi2_ndf": fom["chi2_ndf"], "overlap": fom["overlap"],
            **verdict_columns(fom),
            "classifier": fom["classifier"], "rows_train_per_class": fom["n_train_per_class"],
            "rows_eval_per_class": fom["n_eval_per_class"], "reduced": fom["reduced"],
            "training_seconds": training_seconds(Path(train_dir) / "history.csv"),
            "generated_rows": generated["rows"], "generation_rows_per_s": generated["rows_per_s"],
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict_columns(metrics: dict) -> dict:
    """Verdict, floor and distance cells of one model (empty when its metrics.json predates them)."""
    floor = metrics.get("floor") or {}
    rows = {row["metric"]: row for row in (metrics.get("verdict") or {}).get("rows", [])}
    distances = metrics.get("distances") or {}
    return {
        "verdict": (metrics.get("verdict") or {}).get("overall"),
        "auc_floor": floor.get("auc"), "auc_floor_error": floor.get("auc_mean_error", floor.get("auc_error")),
        "auc_minus_floor": metrics.get("auc_minus_floor"), "auc_minus_floor_error": metrics.get("auc_minus_floor_error"),
        **{name: rows.get(name, {}).get("value") for name in ("w1_over_std_max", "ks_max", "corr_max_abs")},
        **{f"{name}{suffix}": (distances.get(name) or {}).get(key)
           for name in ("fpd", "kpd") for suffix, key in (("", "value"), ("_error", "error"))},
    }


def training_seconds(history_csv: Path) -> float | None:
    if not history_csv.exists():
        return None
    history = pd.read_csv(history_csv)
    for column in PER_EPOCH_TIME:
        if column in history:
            return float(history[column].sum())
    for column in CUMULATIVE_TIME:
        if column in history and len(history):
            return float(history[column].iloc[-1])
    return None


def write_summary(metrics: list[str], generation: list[str], train_dirs: list[str], output: str) -> pd.DataFrame:
    table = summary_table(metrics, generation, train_dirs)
    write_text_atomic(output, table.to_csv(index=False, float_format="%.6g"))
    return table
