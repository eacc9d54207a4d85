"""What preprocessing did to the rows, for ``transforms.json`` ``report`` and the log.

Clips, ratio floors, log offsets and point masses are counted over every row (all splits); values that a
transform handles but a physicist should look at are named with their raw file and entry: a spike with a
few rows beyond it (no point mass), one row that holds most of a column's model-space spread.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import pandas as pd

from pipeline_steps.common.identity import row_origin
from pipeline_steps.common.outliers import dominating_row
from pipeline_steps.preprocess.derived import floored_rows
from pipeline_steps.preprocess.model_transforms import ModelTransforms
from pipeline_steps.preprocess.transforms import spikes_short_of_an_edge

logger = logging.getLogger(__name__)


def dominant_rows(splits: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    """Model-space columns (``cond__*``, ``targ__*``) in which one row of all ``splits`` holds more than half
    of the spread (``common/outliers.py``), each with that row's value and origin, and a warning in the log.

    Under a standardisation every other row is then squeezed near one value; under a quantile kind the
    row is a value extrapolated far beyond the outermost knot (a qgl of 1e30 became 6e31). A heavy tail
    under ``standard`` wants a log kind or a ``clip``; a flag set on one row in thousands, dequantising.
    One column at a time, so the dataset is not copied.
    """
    found: dict[str, dict[str, Any]] = {}
    tables = [table for table in splits.values() if len(table)]
    if not tables:
        return found
    for column in [c for c in tables[0].columns if c.startswith(("cond__", "targ__"))]:
        dominant = dominating_row(np.concatenate([table[column].to_numpy(np.float64) for table in tables]))
        if dominant is None:
            continue
        position, share = dominant
        for table in tables:  # the split that holds the row
            if position < len(table):
                break
            position -= len(table)
        variable = column.split("__", 1)[1]
        found[variable] = {"model_value": float(table[column].iloc[position]), "share": share,
                           "origin": row_origin(table, position)}
        physical = f" (physical {table[variable].iloc[position]:g})" if variable in table.columns else ""
        logger.warning("%s: one row holds %.0f%% of the model-space spread, %s = %g%s in %s; the other rows are "
                       "squeezed together: check that value; clip a long tail (preprocessing.clip) or give it a "
                       "log or quantile transform, dequantise a flag set on few rows", variable, 100 * share,
                       column, found[variable]["model_value"], physical, found[variable]["origin"])
    return found


def _report_point_masses(report: dict[str, Any], transform, table: pd.DataFrame,
                         point_mass_share: float | None) -> None:
    """Edge point masses of one variable into ``report["point_mass"]`` and the log; with ``point_mass_share``,
    a value that holds that share but has a few rows beyond it into ``report["point_mass_short_of_edge"]``,
    with a warning saying what it costs and that a clip is the fix."""
    values = transform.clipped(table[transform.name].to_numpy(np.float64))
    for side in ("low", "high"):
        value = transform.params.get(f"point_mass_{side}")
        if value is None:
            continue
        rows = int(np.sum(values == value))
        report["point_mass"].setdefault(transform.name, {})[side] = {"value": value, "rows": rows}
        logger.info("point mass %s = %g (%s edge): %d of %d rows, spread over a block of width %.3g for training",
                    transform.name, value, side, rows, len(table), transform.params["point_mass_width"])
    if point_mass_share is None or transform.dequantize:
        return
    for side, spike in spikes_short_of_an_edge(values, point_mass_share).items():
        report["point_mass_short_of_edge"].setdefault(transform.name, {})[side] = spike
        bound = "[%g, null]" % spike["value"] if side == "low" else "[null, %g]" % spike["value"]
        cost = ("they come back as %g from model space" % spike["value"]
                if transform.params.get(f"point_mass_{side}") == spike["value"] else
                "so it is no edge and is not spread as a point mass: the model draws a bump around it")
        logger.warning("%s: %d of %d rows are %g, and %d rows lie %s it (to %g): %s; preprocessing.clip: {%s: %s} "
                       "makes it the edge", transform.name, spike["rows"], len(values), spike["value"],
                       spike["beyond"], "below" if side == "low" else "above", spike["extreme"], cost,
                       transform.name, bound)


def preprocessing_report(rows: pd.DataFrame, model_targets: pd.DataFrame, model_transforms: ModelTransforms,
                         point_mass_share: float | None = None) -> dict:
    """What was floored or clipped, over every row (all splits), for ``transforms.json`` and the log.

    ``clipped``: per variable with a clip, its bounds and how many rows were below/above them;
    ``ratio_floor``: per ratio with a denominator floor, how many rows had the reference below it;
    ``log_offset``: the offsets in use (their inverse is exact, nothing is lost);
    ``point_mass``: per target with an edge point mass, its value(s) and how many rows sit there
    (spread into a block for training, exact on the way back);
    ``point_mass_short_of_edge``: per target, a value holding ``point_mass_share`` of the rows with a few
    rows beyond it (``spikes_short_of_an_edge``), which a clip would make an edge.
    """
    report: dict[str, Any] = {"rows": int(len(rows)), "clipped": {}, "ratio_floor": {}, "log_offset": {},
                              "point_mass": {}, "point_mass_short_of_edge": {}}
    for variables, table, share in ((model_transforms.conditions, rows, None),
                                    (model_transforms.targets, model_targets, point_mass_share)):
        for transform in variables.transforms:
            params = transform.params
            _report_point_masses(report, transform, table, share)
            if "offset" in params:
                report["log_offset"][transform.name] = params["offset"]
            if "clip_low" in params or "clip_high" in params:
                counts = transform.clip_counts(table[transform.name].to_numpy())
                report["clipped"][transform.name] = {"low": params.get("clip_low"), "high": params.get("clip_high"),
                                                     **counts}
                logger.info("clip %s to [%s, %s]: %d rows below, %d above (of %d)", transform.name,
                            params.get("clip_low"), params.get("clip_high"), counts["below"], counts["above"], len(rows))
    for name, spec in model_transforms.derived.items():
        if spec.op != "ratio" or name not in model_transforms.target_names:
            continue
        if spec.floor is not None:
            below = floored_rows(spec, rows)
            report["ratio_floor"][name] = {"reference": spec.reference, "floor": spec.floor, "rows_below": below}
            logger.info("ratio %s = %s / max(%s, %g): %d rows with %s below the floor (of %d)", name, spec.source,
                        spec.reference, spec.floor, below, spec.reference, len(rows))
            continue
        non_positive = int(np.sum(rows[spec.reference].to_numpy(np.float64) <= 0))
        if non_positive:  # finite, but a ratio over -2.6e-7 is -1e7: say so, and how to avoid it
            logger.warning("ratio %s = %s / %s: %d rows have %s <= 0 (ratios of huge size or flipped sign); "
                           "set derived.%s.floor", name, spec.source, spec.reference, non_positive, spec.reference,
                           name)
    return report
