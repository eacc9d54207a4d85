"""SHiP muon categorisation: the GAN/VAE study's preprocessing (section 2), made reproducible.

Muons that reached the veto (ingested ``muons`` table: veto hits joined with their MC track) are
split into four categories by charge and by whether they come from the target:

====  ==========  ===================  ==========================================
cat   PdgCode     from the target      kept variables (in this order)
====  ==========  ===================  ==========================================
1     -13 (mu+)   StartX == StartY == 0   weight, StartZ, Px, Py, Pz
2      13 (mu-)   StartX == StartY == 0   weight, StartZ, Px, Py, Pz
3     -13 (mu+)   otherwise               weight, StartX, StartY, StartZ, Px, Py, Pz
4      13 (mu-)   otherwise               weight, StartX, StartY, StartZ, Px, Py, Pz
====  ==========  ===================  ==========================================

"From the target" needs BOTH StartX and StartY to be exactly zero (the study's rule for
categories 1-2). The study's text defines 3-4 with "StartX != 0 and StartY != 0", which would
drop a muon with exactly one zero coordinate from every category; here categories 3-4 are the
*complement* of "from the target", so a muon with only one of StartX/StartY equal to zero goes to
category 3 (mu+) or 4 (mu-) and no muon is lost.

Every variable of a category is mapped to [-1, 1] with the category's global min/max, reduced
from partials, one per ingested table of an ingest part (map: :func:`file_minmax`, reduce: :func:`reduce_minmax`). The weight is
not min-max scaled: it becomes a probability by dividing by the largest weight of the whole
sample (computed, never hard-coded; the study's 768.75). For categories 3-4, StartX and StartY
are then broadened (:func:`broaden`): subtract the mean, signed square root, add the mean back,
renormalise to [-1, 1]; its constants are stored so :func:`denormalise` inverts it exactly.
Units are those of the input (FairShip: cm for Start*, GeV/c for P*).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline_steps.categorise.category_ids import CATEGORIES, DISPLACED_VARIABLES, REQUIRED_COLUMNS, TARGET_VARIABLES
from pipeline_steps.common.errors import InputError
from pipeline_steps.common.identity import IDENTITY_COLUMNS, row_origin
from pipeline_steps.common.outliers import dominating_row

logger = logging.getLogger(__name__)

__all__ = [
    "CATEGORIES",
    "CATEGORY_VARIABLES",
    "BROADENED_VARIABLES",
    "IDENTITY_COLUMNS",
    "assign_categories",
    "file_minmax",
    "reduce_minmax",
    "normalise",
    "unnormalise",
    "broaden",
    "unbroaden",
    "categorise",
    "denormalise",
    "denormalise_mixed",
    "category_shares",
    "load_categories",
]

PDG_MU_MINUS = 13
PDG_MU_PLUS = -13
CATEGORY_VARIABLES: dict[int, tuple[str, ...]] = {
    1: TARGET_VARIABLES,
    2: TARGET_VARIABLES,
    3: DISPLACED_VARIABLES,
    4: DISPLACED_VARIABLES,
}
BROADENED_VARIABLES = ("StartX", "StartY")
#: (PdgCode, from the target) of each category
CATEGORY_DEFINITIONS = {1: (PDG_MU_PLUS, True), 2: (PDG_MU_MINUS, True), 3: (PDG_MU_PLUS, False), 4: (PDG_MU_MINUS, False)}


@dataclass(frozen=True)
class Broadening:
    """Constants of one broadened variable: the mean subtracted and the secondary min/max."""

    mean: float
    min: float
    max: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "min": self.min, "max": self.max}


def assign_categories(muons: pd.DataFrame, source: str = "muon table") -> np.ndarray:
    """Category 1..4 (int8) of every row; see the module docstring for the rule.

    Raises InputError naming ``source`` for a PdgCode other than +-13 or NaN in StartX/StartY.
    """
    _check_columns(muons, ("PdgCode", "StartX", "StartY"), source)
    pdg = muons["PdgCode"].to_numpy()
    bad = ~np.isin(pdg, (PDG_MU_PLUS, PDG_MU_MINUS))
    if bad.any():
        found = sorted(set(np.asarray(pdg[bad]).tolist()))[:5]
        raise InputError(f"{source}: column PdgCode: expected only muons (13 or -13), found {found} in {int(bad.sum())} rows")
    start_x, start_y = muons["StartX"].to_numpy(), muons["StartY"].to_numpy()
    if np.isnan(start_x).any() or np.isnan(start_y).any():
        raise InputError(f"{source}: StartX/StartY contain NaN; cannot tell whether a muon comes from the target")
    from_target = (start_x == 0) & (start_y == 0)
    negative = pdg == PDG_MU_MINUS
    return (1 + negative.astype(np.int8) + 2 * (~from_target).astype(np.int8)).astype(np.int8)


def file_minmax(muons: pd.DataFrame, source: str = "muon table") -> dict[str, Any]:
    """Map step: per-category row count, weight sum, min and max of every kept variable.

    Empty categories have ``n = 0`` and empty min/max mappings (JSON has no infinity).
    """
    _check_columns(muons, REQUIRED_COLUMNS, source)
    _check_finite(muons, DISPLACED_VARIABLES, source)
    _check_non_negative_weights(muons, source)
    categories = assign_categories(muons, source)
    partial = {"n_rows": int(len(muons)), "max_weight": _max_or_none(muons["weight"]), "categories": {}}
    for category in CATEGORIES:
        rows = muons.loc[categories == category, list(CATEGORY_VARIABLES[category])]
        partial["categories"][str(category)] = {
            "n": int(len(rows)),
            "sum_weight": math.fsum(rows["weight"].to_numpy(dtype=np.float64)),
            "min": {name: float(rows[name].min()) for name in rows.columns} if len(rows) else {},
            "max": {name: float(rows[name].max()) for name in rows.columns} if len(rows) else {},
        }
    return partial


def reduce_minmax(partials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Reduce step: global counts, weight sums, min/max and largest weight from file partials.

    Independent of the order of ``partials`` for everything but the last bits of the weight sums.
    """
    weights = [p["max_weight"] for p in partials if p["max_weight"] is not None]
    total = {"n_rows": sum(int(p["n_rows"]) for p in partials), "n_files": len(partials),
             "max_weight": max(weights) if weights else None, "categories": {}}
    for category in map(str, CATEGORIES):
        parts = [p["categories"][category] for p in partials]
        total["categories"][category] = {
            "n": sum(int(part["n"]) for part in parts),
            "sum_weight": math.fsum(float(part["sum_weight"]) for part in parts),
            "min": _combine([part["min"] for part in parts], min),
            "max": _combine([part["max"] for part in parts], max),
        }
    return total


def normalise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly onto [-1, 1] (float64). A constant variable maps to 0."""
    values = np.asarray(values, dtype=np.float64)
    span = high - low
    if span == 0:
        return np.zeros_like(values)
    return 2.0 * (values - low) / span - 1.0


def unnormalise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Inverse of :func:`normalise` (a constant variable comes back as ``low``)."""
    values = np.asarray(values, dtype=np.float64)
    return low + (values + 1.0) * 0.5 * (high - low)


def broaden(normalised: np.ndarray) -> tuple[np.ndarray, Broadening]:
    """The study's broadening of a sharply peaked, already normalised variable.

    ``b = mean + sign(v - mean) * sqrt(|v - mean|)``, then ``b`` is renormalised to [-1, 1] with
    its own (secondary) min/max. Returns the result and the constants :func:`unbroaden` needs.
    """
    normalised = np.asarray(normalised, dtype=np.float64)
    if normalised.size == 0:
        return normalised.copy(), Broadening(0.0, 0.0, 0.0)
    mean = float(normalised.mean())
    shifted = normalised - mean
    widened = np.sign(shifted) * np.sqrt(np.abs(shifted)) + mean
    constants = Broadening(mean, float(widened.min()), float(widened.max()))
    return normalise(widened, constants.min, constants.max), constants


def unbroaden(values: np.ndarray, constants: Broadening | Mapping[str, float]) -> np.ndarray:
    """Exact inverse of :func:`broaden` given its constants."""
    if not isinstance(constants, Broadening):
        constants = Broadening(**{key: float(constants[key]) for key in ("mean", "min", "max")})
    widened = unnormalise(values, constants.min, constants.max) - constants.mean
    return np.sign(widened) * widened * widened + constants.mean


def categorise(muons: pd.DataFrame, minmax: Mapping[str, Any], identity: Sequence[str] = IDENTITY_COLUMNS,
               source: str = "muon tables") -> tuple[dict[int, pd.DataFrame], dict[str, Any]]:
    """Split, normalise and broaden all muons with the reduced ``minmax``; build categories.json.

    Returns ``{category: table}`` (identity columns, ``category`` int8, kept variables as float64
    in [-1, 1], ``weight`` as probability) and the JSON-ready description with shares, min/max,
    the largest weight and the broadening constants. Rows are sorted by identity, so the output
    does not depend on file order.
    """
    _check_columns(muons, tuple(identity) + REQUIRED_COLUMNS, source)
    _check_finite(muons, DISPLACED_VARIABLES, source)
    max_weight = _largest_weight(minmax, source)
    muons = muons.sort_values(list(identity), kind="stable", ignore_index=True)
    categories = assign_categories(muons, source)
    tables, described = {}, {}
    for category in CATEGORIES:
        rows = muons.loc[categories == category].reset_index(drop=True)
        expected = minmax["categories"][str(category)]
        _check_consistent(category, rows, expected, source)
        _warn_dominating_values(category, rows, source)
        tables[category], described[str(category)] = _normalise_category(category, rows, expected, max_weight, identity)
    return tables, _describe(described, muons, max_weight)


def _warn_dominating_values(category: int, rows: pd.DataFrame, source: str) -> None:
    """Warn about a value that holds most of a variable's spread in its category (``common/outliers.py``):
    the min-max normalisation to [-1, 1] is set by it, so a sentinel (one Px at float32's maximum) squeezes
    every other muon of the category onto one value, with no error anywhere."""
    for name in (name for name in CATEGORY_VARIABLES[category] if name != "weight"):  # weight: divided by its max
        dominant = dominating_row(rows[name].to_numpy(np.float64))
        if dominant is not None:
            position, share = dominant
            logger.warning("%s: category %d: one muon holds %.0f%% of the spread of %s (%g, %s), so the min-max "
                           "normalisation squeezes the category's other muons together: check that value", source,
                           category, 100 * share, name, rows[name].iloc[position], row_origin(rows, position))


def denormalise(df: pd.DataFrame, category: int, categories_json: Mapping[str, Any] | str | Path) -> pd.DataFrame:
    """Physical values of a table in the categorised space (real or generated): exact inverse on [-1, 1].

    Converts the category's variables present in ``df`` (``weight`` is optional: generated rows may
    have none) and leaves other columns as they are. Categories 1-2 come from the target by
    definition, so their ``StartX``/``StartY`` are set to 0.0 (added if absent, overwritten if present).

    Every real row lies in [-1, 1] (the min/max are those of all files); a generated value beyond is
    clipped to it, as the other models' rows are held to their training support: unclipped, a normalised
    Pz of -1.3 had come back as a backward muon (-23.5 GeV) and a StartX of 1.3 beyond the category's
    range, widened further by the broadening's square.
    """
    info = _category_info(categories_json, category)
    physical = df.copy()
    for name in info["variables"]:
        if name not in df.columns:
            continue
        values = df[name].to_numpy(dtype=np.float64)
        if name == "weight":
            physical[name] = values * info["max_weight"]
            continue
        if name not in info["min"]:  # a category no file had a muon of: nothing to give physical values to
            if len(df):
                raise InputError(f"denormalise: category {category} has no {name} range in categories.json (no "
                                 f"muons of it in any file), so its {len(df)} rows cannot be given physical values")
            continue
        values = np.clip(values, -1.0, 1.0)
        if name in info["broadening"]:
            values = unbroaden(values, info["broadening"][name])
        physical[name] = unnormalise(values, info["min"][name], info["max"][name])
    if CATEGORY_DEFINITIONS[int(category)][1]:
        physical["StartX"] = 0.0
        physical["StartY"] = 0.0
    return physical


def denormalise_mixed(df: pd.DataFrame, categories_json: Mapping[str, Any] | str | Path,
                      category_column: str = "category") -> pd.DataFrame:
    """:func:`denormalise` for a table holding several categories (a ``category`` column); row order kept."""
    described = load_categories(categories_json) if not isinstance(categories_json, Mapping) else categories_json
    labels = df[category_column].to_numpy()
    unknown = sorted(set(np.unique(labels).tolist()) - set(CATEGORIES))
    if unknown:
        raise InputError(f"denormalise: column {category_column!r} holds {unknown}; expected categories 1-4")
    masks = [(c, labels == c) for c in CATEGORIES if (labels == c).any()]
    if not masks:
        return denormalise(df, 3, described)
    parts = [denormalise(df.loc[mask], c, described) for c, mask in masks]
    positions = np.concatenate([np.flatnonzero(mask) for _, mask in masks])
    return pd.concat(parts).iloc[np.argsort(positions, kind="stable")]


def category_shares(categories_json: Mapping[str, Any] | str | Path, weighted: bool = True) -> dict[int, float]:
    """Each category's share of all muons (weighted by the physical weight, or by count)."""
    described = load_categories(categories_json) if not isinstance(categories_json, Mapping) else categories_json
    key = "share_weighted" if weighted else "share_unweighted"
    return {int(c): float(info[key]) for c, info in described["categories"].items()}


def load_categories(path: str | Path) -> dict[str, Any]:
    """Read categories.json (plain JSON; no code is executed)."""
    return json.loads(Path(path).read_text())


# --- helpers -------------------------------------------------------------------------------------


def _check_columns(table: pd.DataFrame, required: Sequence[str], source: str) -> None:
    missing = [name for name in required if name not in table.columns]
    if missing:
        raise InputError(f"{source}: missing columns {missing}; expected the ingested SHiP muon table "
                         f"with {list(required)}, found {list(table.columns)}")


def _check_finite(table: pd.DataFrame, names: Sequence[str], source: str) -> None:
    for name in names:
        values = table[name].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise InputError(f"{source}: column {name} has {int((~np.isfinite(values)).sum())} NaN/inf values")


def _check_non_negative_weights(muons: pd.DataFrame, source: str) -> None:
    """A muon weight is a rate; divided by the largest it becomes a probability, which a negative one is not
    (it had been written as one, and stopped the flow's training, which named a split, not this table)."""
    weights = muons["weight"].to_numpy(dtype=np.float64)
    negative = weights < 0
    if negative.any():
        raise InputError(f"{source}: column weight has {int(negative.sum())} negative values of {len(weights)} (first "
                         f"{weights[negative][0]:g}); SHiP muon weights are rates, >= 0, that the categorisation turns "
                         f"into probabilities (weight / largest weight)")


def _max_or_none(values: pd.Series) -> float | None:
    return float(values.max()) if len(values) else None


def _combine(mappings: Sequence[Mapping[str, float]], pick) -> dict[str, float]:
    names = sorted({name for mapping in mappings for name in mapping})
    return {name: float(pick(m[name] for m in mappings if name in m)) for name in names}


def _largest_weight(minmax: Mapping[str, Any], source: str) -> float:
    max_weight = minmax.get("max_weight")
    if max_weight is not None and max_weight <= 0:
        raise InputError(f"{source}: the largest muon weight is {max_weight}; expected a positive weight")
    return float(max_weight) if max_weight is not None else 1.0


def _check_consistent(category: int, rows: pd.DataFrame, expected: Mapping[str, Any], source: str) -> None:
    """minmax.json must describe exactly these tables (a stale one would push values out of [-1, 1])."""
    if len(rows) != int(expected["n"]):
        raise InputError(f"{source}: category {category} has {len(rows)} muons but minmax.json counts "
                         f"{expected['n']}; minmax.json was made from other files, rerun categorise_reduce")
    for name in CATEGORY_VARIABLES[category]:
        if len(rows) and (rows[name].min() < expected["min"][name] or rows[name].max() > expected["max"][name]):
            raise InputError(f"{source}: category {category} variable {name} lies outside the min/max of "
                             f"minmax.json [{expected['min'][name]}, {expected['max'][name]}]")


def _normalise_category(category: int, rows: pd.DataFrame, expected: Mapping[str, Any], max_weight: float,
                        identity: Sequence[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    table = rows[list(identity)].copy()
    table["category"] = np.full(len(rows), category, dtype=np.int8)
    broadening = {}
    for name in CATEGORY_VARIABLES[category]:
        values = rows[name].to_numpy(dtype=np.float64)
        if name == "weight":
            table[name] = values / max_weight
            continue
        values = normalise(values, expected["min"].get(name, 0.0), expected["max"].get(name, 0.0))
        if category in (3, 4) and name in BROADENED_VARIABLES:
            values, constants = broaden(values)
            broadening[name] = constants.to_dict()
        table[name] = values
    pdg, from_target = CATEGORY_DEFINITIONS[category]
    info = {"pdg_code": pdg, "from_target": from_target, "variables": list(CATEGORY_VARIABLES[category]),
            "n": int(len(rows)), "sum_weight": float(math.fsum(rows["weight"].to_numpy(dtype=np.float64))),
            "min": dict(expected["min"]), "max": dict(expected["max"]), "broadening": broadening}
    return table, info


def _describe(described: dict[str, dict[str, Any]], muons: pd.DataFrame, max_weight: float) -> dict[str, Any]:
    n_total = sum(info["n"] for info in described.values())
    weight_total = math.fsum(info["sum_weight"] for info in described.values())
    for info in described.values():
        info["share_unweighted"] = info["n"] / n_total if n_total else 0.0
        info["share_weighted"] = info["sum_weight"] / weight_total if weight_total else 0.0
    return {
        "max_weight": max_weight,
        "n_total": n_total,
        "weight_total": weight_total,
        "source_files": sorted(muons["source_file"].astype(str).unique().tolist()) if "source_file" in muons else [],
        "rule": "from the target = StartX == 0 and StartY == 0 (both); otherwise categories 3-4",
        "categories": described,
    }


def _category_info(categories_json: Mapping[str, Any] | str | Path, category: int) -> dict[str, Any]:
    described = categories_json if isinstance(categories_json, Mapping) else load_categories(categories_json)
    key = str(int(category))
    if key not in described["categories"]:
        raise InputError(f"categories.json: no category {category}; expected one of {sorted(described['categories'])}")
    info = dict(described["categories"][key])
    info["max_weight"] = float(described["max_weight"])
    return info
