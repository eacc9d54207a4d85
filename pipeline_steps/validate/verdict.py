"""Pass / warn / fail per metric and overall, against the thresholds of ``validation.thresholds``.

A threshold applies to a metric's *excess over its real-vs-real floor* (value - floor), so the
statistical noise that a perfect generator would also show does not count against a model; without a
floor (real sample too small to halve) it applies to the value itself (for the AUC: AUC - 0.5),
which is the stricter reading. A metric is "pass" below ``warn``, "warn" from ``warn`` to below
``fail``, "fail" from ``fail`` on. A metric whose excess has an error (the spread of value - floor over
the bootstrap replicas both share, or value's and floor's errors in quadrature where they share none)
above its ``warn`` threshold cannot tell a pass from a warn with these rows, so unless its
excess stands ``RESOLVING_ERRORS`` errors above ``warn`` it is "not resolved" and decides nothing (KPD's
excess error is 0.0009 at 10000 test rows and 0.0005 at 40000 for a perfect generator, against thresholds
of 0.0008 / 0.003; its errors in quadrature, before value and floor shared their batches, were 0.0015 at
10000 rows, and a generator drawing from the real distribution itself had failed KPD in 2 of 8 seeds; a
0.15 sigma shift, KPD excess 0.016 +- 0.003, is still judged). With an error below ``warn`` the error is shown, not used (a
reviewer sees whether a "warn" is within one error of "pass"). A metric that could not be computed is listed as "not computable" with the reason and
decides nothing; the overall verdict is the worst decided one ("not computable" when none is decided). For per-feature metrics the row is the generated feature (``targets`` of
metrics.json) with the worst warn or fail, else an unresolved one, else the largest passing excess (a
feature not computable blocks nothing; its reason is in metrics.json): conditions are copied from the real rows (SHiP's category is
drawn from the recorded shares), so their W1 and KS say nothing about the generator, and a diverged GAN, its targets all NaN, had passed on them alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from pipeline_steps.common.errors import ConfigError

if TYPE_CHECKING:  # planning reads the thresholds (workflow_config.py) and must not import pandas
    import pandas as pd

PASS, WARN, FAIL, NOT_COMPUTABLE, NOT_RESOLVED = "pass", "warn", "fail", "not computable", "not resolved"
SEVERITY = {PASS: 0, WARN: 1, FAIL: 2}
#: The metrics a verdict is given for, in the order of the table (keys of ``validation.thresholds``).
METRICS = ("auc_minus_floor", "w1_over_std_max", "ks_max", "corr_max_abs", "fpd", "kpd")
#: How far above ``warn``, in errors of the excess, an excess must stand to be judged when its error is above
#: ``warn``: a perfect generator's excess is ~N(0, error), so it gets there by chance 2.3 % of the time
#: (one-sided), against 25 % for KPD's fail without the rule.
RESOLVING_ERRORS = 2.0
COLUMNS = ["metric", "value", "error", "floor", "floor_error", "excess", "excess_error", "warn", "fail", "verdict",
           "detail"]


@dataclass(frozen=True)
class Threshold:
    warn: float
    fail: float


def thresholds_from_config(validation: Mapping[str, Any]) -> dict[str, Threshold]:
    """``validation.thresholds`` as {metric: Threshold}; unknown metrics and fail < warn are refused."""
    configured = dict(validation.get("thresholds") or {})
    unknown = sorted(set(configured) - set(METRICS))
    if unknown:
        raise ConfigError(f"validation.thresholds: unknown metric(s) {unknown}; expected some of {list(METRICS)}")
    thresholds = {name: Threshold(float(limits["warn"]), float(limits["fail"])) for name, limits in configured.items()}
    for name, limit in thresholds.items():
        if limit.fail < limit.warn:
            raise ConfigError(f"validation.thresholds.{name}: fail ({limit.fail}) below warn ({limit.warn})")
    return thresholds


def verdict(metrics: Mapping[str, Any], thresholds: Mapping[str, Threshold]) -> dict[str, Any]:
    """{"overall": ..., "rows": [one dict per metric with a threshold, COLUMNS as keys]}.

    A per-feature metric's line is its worst warn or fail feature (by verdict, then excess): taking the
    largest excess first had let one unresolved feature (0.12 +- 0.063) hide another's clear fail (0.11 +-
    0.007); without one, an unresolved feature before a passing one (``_worst``).
    The overall verdict is "not resolved" when lines were computed but none could be decided.
    """
    candidates = {"auc_minus_floor": [_auc_row(metrics)],
                  **_distance_rows(metrics.get("distances") or {}, metrics.get("targets"))}
    rows = [_worst([_judge(name, row, thresholds[name]) for row in candidates[name]])
            for name in METRICS if name in thresholds]
    decided = [row["verdict"] for row in rows if row["verdict"] in SEVERITY]
    if decided:
        overall = max(decided, key=SEVERITY.get)
    else:
        overall = NOT_RESOLVED if any(row["verdict"] == NOT_RESOLVED for row in rows) else NOT_COMPUTABLE
    return {"overall": overall, "rows": rows}


def _worst(judged: list[dict[str, Any]]) -> dict[str, Any]:
    """The line of a metric judged per feature (the largest over features): its worst warn or fail row;
    else a "not resolved" row, since the largest could be that feature's; else its largest excess.

    A pass is the line only when every feature passes: with paired excess errors (``compare._merge``)
    nano_muons' ptErr passed (0.004 +- 0.039) while dxy stood at 0.174 +- 0.090, not resolved, and the
    line had read "pass"."""
    def largest(rows):
        return max(rows, key=lambda row: -math.inf if row["excess"] is None else row["excess"])

    raised = [row for row in judged if row["verdict"] in (WARN, FAIL)]
    if raised:
        return max(raised, key=lambda row: (SEVERITY[row["verdict"]], row["excess"]))
    unresolved = [row for row in judged if row["verdict"] == NOT_RESOLVED]
    return largest(unresolved or [row for row in judged if row["verdict"] == PASS] or judged)


def verdict_table(model: str, judged: Mapping[str, Any]) -> pd.DataFrame:
    """The per-model CSV: an ``overall`` line first, then one line per metric."""
    import pandas as pd

    overall = {column: None for column in COLUMNS} | {"metric": "overall", "verdict": judged["overall"], "detail": model}
    return pd.DataFrame([overall, *judged["rows"]], columns=COLUMNS)


def _judge(name: str, row: dict[str, Any], limit: Threshold) -> dict[str, Any]:
    row = {**row, "metric": name, "warn": limit.warn, "fail": limit.fail}
    excess = row.get("excess")
    if excess is None or not math.isfinite(excess):
        return {**{c: None for c in COLUMNS}, **row, "verdict": NOT_COMPUTABLE}
    error = row["excess_error"] = _excess_error(row)
    if error is not None and error > limit.warn and excess - RESOLVING_ERRORS * error < limit.warn:
        row["detail"] = (f"{row.get('detail', '')}; the excess's error {error:.3g} is above the warn threshold "
                         f"{limit.warn:g} and the excess within {RESOLVING_ERRORS:g} errors of it: these rows "
                         f"cannot resolve it").lstrip("; ")
        row["verdict"] = NOT_RESOLVED
    else:
        row["verdict"] = FAIL if excess >= limit.fail else WARN if excess >= limit.warn else PASS
    return {column: row.get(column) for column in COLUMNS}


def _excess_error(row: Mapping[str, Any]) -> float | None:
    """The error of value - floor: the spread of the difference over the bootstrap replicas that value and
    floor share, where the distances give it (``compare._merge``); else both errors in quadrature (the AUC,
    whose value and floor are different BDTs), the value's alone without a floor."""
    if row.get("excess_error") is not None and row.get("floor") is not None:
        return float(row["excess_error"])
    errors = [row.get("error"), row.get("floor_error") if row.get("floor") is not None else None]
    known = [float(e) for e in errors if e is not None and math.isfinite(float(e))]
    return math.hypot(*known) if known else None


def _auc_row(metrics: Mapping[str, Any]) -> dict[str, Any]:
    if metrics.get("auc") is None:
        return {"detail": metrics.get("reason", "AUC not computed")}
    floor = metrics.get("floor") or {}
    if floor.get("auc") is None:
        return {"value": metrics["auc"], "error": metrics.get("auc_error"), "excess": metrics["auc"] - 0.5,
                "detail": f"no floor ({floor.get('reason', 'not computed')}): judged as AUC - 0.5"}
    # the floor is the mean over floor_repeats halvings: its error is the mean's (as in AUC - floor's error)
    return {"value": metrics["auc"], "error": metrics.get("auc_error"), "floor": floor["auc"],
            "floor_error": floor.get("auc_mean_error", floor.get("auc_error")), "excess": metrics["auc_minus_floor"],
            "detail": f"BDT AUC, {metrics['n_eval_per_class']} eval rows per class; excess = AUC - floor"}


def _distance_rows(distances: Mapping[str, Any], targets: list[str] | None) -> dict[str, list[dict[str, Any]]]:
    per_feature = {name: m for name, m in (distances.get("per_feature") or {}).items()
                   if targets is None or name in targets}
    return {
        "w1_over_std_max": _features({name: m["w1_over_std"] for name, m in per_feature.items()}, "W1 / real std"),
        "ks_max": _features({name: m["ks"] for name, m in per_feature.items()}, "KS statistic"),
        "corr_max_abs": [_row(distances.get("correlation", {}).get("max_abs"), "max |corr(real) - corr(gen)|")],
        "fpd": [_row(distances.get("fpd"), "Frechet physics distance (standardised features)")],
        "kpd": [_row(distances.get("kpd"), "kernel physics distance (standardised features)")],
    }


def _features(per_feature: Mapping[str, Mapping[str, Any]], what: str) -> list[dict[str, Any]]:
    """One row per feature with a number; without any, one row giving every feature's reason."""
    rows = {name: _row(measure, f"{what} of {name}") for name, measure in per_feature.items()}
    measured = [row for row in rows.values() if row.get("excess") is not None]
    if not measured:
        return [{"detail": "; ".join(sorted({row["detail"] for row in rows.values()})) or "no features"}]
    return measured


def _row(measure: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    if not measure or measure.get("value") is None:
        return {"detail": f"{what}: {(measure or {}).get('reason', 'not computed')}"}
    floor = measure.get("floor")
    excess = measure["value"] - floor if floor is not None else measure["value"]
    detail = what + ("; excess = value - floor" if floor is not None else f"; no floor ({measure.get('floor_reason')})")
    return {"value": measure["value"], "error": measure.get("error"), "floor": floor,
            "floor_error": measure.get("floor_error"), "excess": excess,
            "excess_error": measure.get("excess_error"), "detail": detail}
