"""Fitted, exactly invertible transforms of model inputs, stored as JSON + npz (never pickle).

Each variable gets one transform kind (config ``preprocessing``), fitted on the training split only:

- ``passthrough``: unchanged (flags, already normalised SHiP categories);
- ``minmax``: linear map of the training range onto [-1, 1];
- ``standard``: (x - mean) / std;
- ``log_standard``: log(x + offset), then standard (x + offset must be > 0: momenta, masses);
- ``signed_log_standard``: sign(x) log(1 + |x|), then standard (isolation, impact parameters);
- ``quantile_normal``: quantile-to-normal as in LHCb's covariance GAN preprocessing: the training
  quantiles are mapped onto the standard normal's; piecewise linear between the quantile knots and
  linearly extrapolated beyond the outermost ones, so it is strictly monotonic and exactly
  invertible on any value, including validation/test values outside the training range;
- ``log10_quantile_normal``: log10(x + offset), then quantile-to-normal (LHCb's momentum).

Optional, per variable, for real data that the toy rarely has (FlashSim's preprocessing does both):

- ``offset`` (log kinds only, default 0): log(x + offset), inverse exp(y) - offset, exact for every
  x > -offset. A GenJet mass of exactly 0 or -2.6e-7 (float noise) then stays finite and comes back
  as itself (FlashSim: log1p of masses, log(x + 0.001) of impact parameters and ptErr).
- ``clip = (low, high)`` (either may be None): the value is held to [low, high] *before* the
  transform (FlashSim's "saturation" of long tails, e.g. massRatio to [0, 7]; and the floor of a
  mass at 0). Inverse is exact for values inside; a clipped value comes back as the bound. How many
  rows each bound changed is counted by ``clip_counts`` (``transforms.json`` ``report``).

Both are stored in the variable's ``params`` (``offset``, ``clip_low``, ``clip_high``) only when set,
so a transform without them reads exactly as before.

Optional, for targets: point masses at a range edge (``point_mass_share``). Detectors report many
values exactly at an edge: a b-tag score of -1 for a jet without tracks (13% of jets), an energy
fraction of 0 (muEF: 92% of jets). A flow cannot put probability on a point; it draws a bump around
it, the support clip turns only the half beyond the edge into exact values, and the BDT separates
real from generated on that alone (jets: AUC 0.86 -> 0.72 without muEF). When the training edge value
holds at least ``point_mass_share`` of the rows, those rows are spread, in the prepared (log/linear)
space, uniformly over a block of width ``POINT_MASS_SPREAD`` x the other rows' std just *outside*
the edge, where no row lives; the inverse maps everything beyond the edge back onto it. So the model
learns a block it can represent, real rows come back exactly (the block holds only spike rows), and
generated rows land on the edge value as often as the model puts them in the block. Stored as
``point_mass_low``/``point_mass_high`` (physical edge value) and ``point_mass_width`` (prepared units).

Optional, per variable: dequantisation of discrete variables (integer k becomes k + u with
u ~ U(margin, 1 - margin), seeded; the inverse floors, so integers come back exactly; the margin
keeps float32 rounding from crossing an integer, which the fit checks on every training integer of a
target: values too large for it, from ~6e4 under ``standard``, are refused). Optional, per variable
set: decorrelation (ZCA whitening fitted on the training split), applied after the per-variable
transforms.

``ModelTransforms`` bundles the conditions' and targets' transforms with the derived-target
definitions and the covariance target representation, and ``targets_to_physical`` undoes both.
Generation and export load it with ``load_transforms``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.special import ndtri

from pipeline_steps.common.atomic import atomic_path, write_text_atomic
from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.preprocess import covariance_representation as cov_repr
from pipeline_steps.preprocess.derived import DerivedVariable, compute_derived, invert_derived
from pipeline_steps.preprocess.model_variables import LOG_KINDS

__all__ = [
    "TRANSFORM_KINDS",
    "LOG_KINDS",
    "DEQUANTIZE_MARGIN",
    "VariableTransform",
    "Decorrelation",
    "VariableTransforms",
    "ModelTransforms",
    "PhysicalSupport",
    "fit_variable_transform",
    "fit_variable_transforms",
    "invalid_values",
    "spikes_short_of_an_edge",
    "model_space_targets",
    "save_transforms",
    "load_transforms",
]

TRANSFORM_KINDS = (
    "passthrough",
    "minmax",
    "standard",
    "log_standard",
    "signed_log_standard",
    "quantile_normal",
    "log10_quantile_normal",
)
DEQUANTIZE_MARGIN = 1e-3
N_QUANTILES = 1000
FORMAT_VERSION = 1


#: Width of the block a point mass is spread over, in units of the other rows' std (prepared space).
#: A rational-quadratic spline with 8 bins over +-5 std has bins ~1.2 std wide; half a std is a shape it
#: can follow, while a narrower block is again nearly a point. Wider would only move the standardisation.
POINT_MASS_SPREAD = 0.5


# --------------------------------------------------------------------------------------------- one variable
@dataclass
class VariableTransform:
    """One variable's fitted transform. ``params`` holds floats or 1-D float64 arrays (knots)."""

    name: str
    kind: str
    params: dict[str, Any]
    dequantize: bool = False
    dtype: str = "float64"

    def forward(self, values: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Physical values -> transformed (float64); dequantisation noise drawn from ``rng``."""
        x = np.asarray(values, dtype=np.float64)
        rng = rng if rng is not None else np.random.default_rng(0)
        if self.dequantize:
            x = np.floor(x) + rng.uniform(DEQUANTIZE_MARGIN, 1.0 - DEQUANTIZE_MARGIN, size=x.shape)
        x = self.clipped(x)
        return _FORWARD[self.kind](self._spread_point_masses(x, self._prepared(x), rng), self.params)

    def _spread_point_masses(self, x: np.ndarray, prepared: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rows exactly at a stored edge point mass -> uniform over the block just outside the edge."""
        width = self.params.get("point_mass_width")
        if width is None:
            return prepared
        out = prepared.copy()
        for key, direction in (("point_mass_low", -1.0), ("point_mass_high", 1.0)):
            if key in self.params:
                at_edge = x == self.params[key]
                out[at_edge] += direction * width * rng.uniform(DEQUANTIZE_MARGIN, 1.0, size=int(at_edge.sum()))
        return out

    def _onto_point_masses(self, x: np.ndarray) -> np.ndarray:
        """Inverse of the spreading: everything beyond a stored edge point mass is the edge value."""
        if "point_mass_low" in self.params:
            x = np.maximum(x, self.params["point_mass_low"])
        if "point_mass_high" in self.params:
            x = np.minimum(x, self.params["point_mass_high"])
        return x

    def clipped(self, x: np.ndarray) -> np.ndarray:
        """``x`` held to the configured [clip_low, clip_high] (unchanged without a clip)."""
        low, high = self.params.get("clip_low"), self.params.get("clip_high")
        if low is None and high is None:
            return x
        return np.clip(x, -np.inf if low is None else low, np.inf if high is None else high)

    def clip_counts(self, values: np.ndarray) -> dict[str, int]:
        """How many ``values`` the clip moves: ``{"below": n, "above": n}`` (zeros without a clip)."""
        x = np.asarray(values, dtype=np.float64)
        low, high = self.params.get("clip_low"), self.params.get("clip_high")
        return {"below": int(np.sum(x < low)) if low is not None else 0,
                "above": int(np.sum(x > high)) if high is not None else 0}

    def invalid(self, values: np.ndarray) -> np.ndarray:
        """Mask of values this transform cannot take: non-finite, or (log kinds) x + offset <= 0 after
        the clip. Lets the caller name the offending rows' files before anything is fitted."""
        x = np.asarray(values, dtype=np.float64)
        bad = ~np.isfinite(x)
        if self.kind in LOG_KINDS:
            with np.errstate(invalid="ignore"):
                bad |= ~(self.clipped(x) + self.params.get("offset", 0.0) > 0)
        return bad

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Transformed values -> physical values in the variable's original dtype."""
        x = _INVERSE[self.kind](np.asarray(values, dtype=np.float64), self.params)
        x = self._onto_point_masses(self._unprepared(x))
        if self.dequantize:
            x = np.floor(x)
        return _to_dtype(x, np.dtype(self.dtype))

    def _prepared(self, x: np.ndarray) -> np.ndarray:
        if self.kind in LOG_KINDS:
            offset = self.params.get("offset", 0.0)
            shifted = x + offset
            if np.any(shifted <= 0):
                raise InputError(
                    f"transform {self.kind} of {self.name!r}: expected values > {0.0 - offset:g} (log of x + offset, "
                    f"offset {offset:g}), found minimum {np.min(x):g}; set preprocessing.log_offset or a "
                    f"preprocessing.clip low bound for {self.name!r}"
                )
            return np.log(shifted) if self.kind == "log_standard" else np.log10(shifted)
        if self.kind == "signed_log_standard":
            return np.sign(x) * np.log1p(np.abs(x))
        return x

    def _unprepared(self, y: np.ndarray) -> np.ndarray:
        if self.kind == "log_standard":
            return np.exp(y) - self.params.get("offset", 0.0)
        if self.kind == "log10_quantile_normal":
            return np.power(10.0, y) - self.params.get("offset", 0.0)
        if self.kind == "signed_log_standard":
            return np.sign(y) * np.expm1(np.abs(y))
        return y

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "dequantize": self.dequantize, "dtype": self.dtype,
                "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VariableTransform":
        params = {key: np.asarray(value, dtype=np.float64) if isinstance(value, (list, np.ndarray)) else value
                  for key, value in data["params"].items()}
        return cls(name=data["name"], kind=data["kind"], params=params,
                   dequantize=bool(data.get("dequantize", False)), dtype=data.get("dtype", "float64"))


def fit_variable_transform(name: str, values: np.ndarray, kind: str, dequantize: bool = False,
                           rng: np.random.Generator | None = None, offset: float | None = None,
                           clip: tuple[float | None, float | None] | None = None,
                           point_mass_share: float | None = None, exact_integers: bool = False) -> VariableTransform:
    """Fit ``kind`` on training values of one variable (after dequantisation and clip, when asked).

    Every value must be finite: one +inf would make the fitted mean/std infinite and every
    transformed value of the column non-finite. With ``point_mass_share``, an edge value holding
    at least that share of the rows is spread into a block outside the edge before the fit (module doc).
    With ``exact_integers`` (targets: generated values come back through the inverse) a dequantised
    variable must come back exactly from float32; conditions are never inverted, so a run number may be
    dequantised for them however wide its range.
    """
    if kind not in TRANSFORM_KINDS:
        raise ConfigError(f"transform of {name!r}: expected one of {list(TRANSFORM_KINDS)}, got {kind!r}")
    raw = np.asarray(values)
    if raw.size == 0:
        raise InputError(f"transform of {name!r}: no training values to fit on")
    x = raw.astype(np.float64)
    non_finite = ~np.isfinite(x)
    if non_finite.any():
        raise InputError(f"transform of {name!r}: the training values contain {int(non_finite.sum())} non-finite "
                         f"values (NaN or +-inf, e.g. {x[non_finite][0]}); expected finite values")
    transform = VariableTransform(name, kind, _preparation_params(name, kind, offset, clip), dequantize,
                                  dtype=str(raw.dtype))
    rng = rng if rng is not None else np.random.default_rng(0)
    if dequantize:
        _check_integers(name, x)
        x = x + rng.uniform(DEQUANTIZE_MARGIN, 1.0 - DEQUANTIZE_MARGIN, size=x.shape)
    x = transform.clipped(x)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is caught just below, by name
        prepared = transform._prepared(x)
    if point_mass_share is not None and not dequantize:
        transform.params.update(edge_point_masses(x, prepared, point_mass_share))
        prepared = transform._spread_point_masses(x, prepared, rng)
    with np.errstate(over="ignore", invalid="ignore"):
        fitted = _FIT[kind](prepared)
    _check_finite_params(name, fitted)
    transform.params.update(fitted)
    if dequantize and exact_integers:
        _check_integers_come_back(transform, np.unique(raw))
    return transform


def _check_integers_come_back(transform: VariableTransform, integers: np.ndarray) -> None:
    """Every training integer comes back exactly from the float32 model space, or an InputError says why not.

    Float32 rounding of the model value y moves x by up to 2^-24 |y| |dx/dy|; past ``DEQUANTIZE_MARGIN``
    a value crosses to its neighbour (from values of ~6e4 under ``standard``, ~1e5 under ``minmax``,
    fewer under the log kinds), and past 2^53 even x + u cannot be held in float64. The transform and
    rounding are monotone, so the two ends of each integer's interval, k + margin and k + 1 - margin,
    are the worst cases of its rows.
    """
    where = f"dequantisation of {transform.name!r}: "
    as_float = integers.astype(np.float64)
    if integers.dtype.kind in "iu" and np.any(as_float.astype(integers.dtype) != integers):
        raise InputError(f"{where}its values reach {integers.max()}, beyond 2^53, where float64 no longer holds "
                         f"every integer; remove {transform.name!r} from preprocessing.dequantize")
    for end in (DEQUANTIZE_MARGIN, 1.0 - DEQUANTIZE_MARGIN):
        x = as_float + end
        clipped = transform.clipped(x)
        model = _FORWARD[transform.kind](transform._prepared(clipped), transform.params)  # forward without noise
        back = np.asarray(transform.inverse(model.astype(np.float32)), dtype=np.float64)
        expected = np.floor(clipped)
        wrong = back != expected
        if not wrong.any():
            continue
        example = f"e.g. {expected[wrong][0]:.0f} as {back[wrong][0]:.0f}"
        if (wrong & (clipped != x)).any():  # a bound on an integer holds rows on it, where rounding floors below
            raise InputError(f"{where}its clip bounds {transform.params.get('clip_low')}, "
                             f"{transform.params.get('clip_high')} hold rows exactly on an integer, which the float32 "
                             f"model space can bring back as the integer below ({example}); put an integer bound k "
                             f"at k + 0.5 (10 -> 10.5: rows beyond it come back as 10)")
        raise InputError(f"{where}{int(wrong.sum())} of its {integers.size} values ({as_float.min():g} .. "
                         f"{as_float.max():g}) would not come back exactly from the float32 model space under "
                         f"{transform.kind!r} ({example}); values this large are continuous for the model: remove "
                         f"{transform.name!r} from preprocessing.dequantize")


def edge_point_masses(x: np.ndarray, prepared: np.ndarray, min_share: float) -> dict[str, float]:
    """``point_mass_low``/``_high`` (the edge values holding >= ``min_share`` of ``x``) and the block width.

    The width is ``POINT_MASS_SPREAD`` x the std of the rows at neither edge, in prepared units. When
    those rows have no spread (one row, or a few at one value: a flag at one value for all but a few
    jets), their distance from the nearest edge value is the scale instead: without a block, a two-knot
    quantile map had spread the spike over the whole range (59% of generated values off it, 0.03% of
    real ones). No point mass is kept when no row is off the edges (a constant column comes back
    exactly anyway).
    """
    if not 0.0 < min_share < 1.0:
        raise ConfigError(f"preprocessing.point_mass_share: expected a share in (0, 1), got {min_share!r}")
    if x.size == 0:
        return {}
    edges = {"point_mass_low": float(x.min()), "point_mass_high": float(x.max())}
    found = {key: value for key, value in edges.items() if np.mean(x == value) >= min_share}
    off_edges = ~np.isin(x, list(found.values()))
    continuum = prepared[off_edges]
    spread = float(np.std(continuum)) if continuum.size >= 2 else 0.0
    if spread == 0.0 and continuum.size and found:  # every off-edge row at one value
        at_edges = [prepared[np.argmax(x == value)] for value in found.values()]
        spread = float(np.min(np.abs(continuum[0] - np.array(at_edges))))
    if not found or not np.isfinite(spread) or spread == 0.0:
        return {}
    return {**found, "point_mass_width": POINT_MASS_SPREAD * spread}


def spikes_short_of_an_edge(x: np.ndarray, min_share: float) -> dict[str, dict[str, float]]:
    """Per side ("low"/"high"), the outermost value holding >= ``min_share`` of ``x`` when a few rows lie
    beyond it: ``{"value", "rows", "beyond", "extreme"}`` (the most distant of those rows).

    A point mass is found only at the edge (``edge_point_masses``), so one b-tag of -2 below 13% of jets at
    -1 turns the spreading off for the whole column, and a validation row below a training edge comes back
    as the edge. "A few" is at most sqrt(rows at the value): clipping that many onto it changes its count by
    no more than the count's own Poisson error, so ``preprocessing.clip`` is the fix that costs nothing
    measurable; more rows beyond it make the value a peak inside a continuum (an integer count), not an edge.
    """
    values, counts = np.unique(x, return_counts=True)
    spikes = np.flatnonzero(counts >= min_share * x.size)
    found = {}
    for side, index, beyond in (("low", spikes[:1], np.cumsum(counts) - counts),
                                ("high", spikes[-1:], np.cumsum(counts[::-1])[::-1] - counts)):
        if index.size and 0 < beyond[index[0]] <= np.sqrt(counts[index[0]]):
            found[side] = {"value": float(values[index[0]]), "rows": int(counts[index[0]]),
                           "beyond": int(beyond[index[0]]), "extreme": float(values[0 if side == "low" else -1])}
    if len(found) == 2 and found["low"]["value"] == found["high"]["value"]:
        return {}  # one value with a few rows on each side: no edge to make, clipping both would leave a constant
    return found


def invalid_values(name: str, values: np.ndarray, kind: str, offset: float | None = None,
                   clip: tuple[float | None, float | None] | None = None) -> np.ndarray:
    """Mask of ``values`` that ``kind`` (with this offset and clip) cannot transform: non-finite, or
    outside a log's domain. Checked on every row before fitting, so the error can name raw files."""
    return VariableTransform(name, kind, _preparation_params(name, kind, offset, clip)).invalid(values)


def _preparation_params(name: str, kind: str, offset: float | None,
                        clip: tuple[float | None, float | None] | None) -> dict[str, float]:
    """``offset``/``clip_low``/``clip_high`` as stored in ``params`` (absent when not set), checked."""
    params: dict[str, float] = {}
    if offset is not None:
        if kind not in LOG_KINDS:
            raise ConfigError(f"log_offset of {name!r}: only log transforms {list(LOG_KINDS)} take an offset, "
                              f"{name!r} has {kind!r}")
        if not np.isfinite(offset):
            raise ConfigError(f"log_offset of {name!r}: expected a finite number, got {offset!r}")
        params["offset"] = float(offset)
    low, high = clip if clip is not None else (None, None)
    for key, bound in (("clip_low", low), ("clip_high", high)):
        if bound is not None:
            if not np.isfinite(bound):
                raise ConfigError(f"clip of {name!r}: expected finite bounds (or null), got {bound!r}")
            params[key] = float(bound)
    if low is not None and high is not None and not low < high:
        raise ConfigError(f"clip of {name!r}: expected low < high, got [{low}, {high}]")
    if kind in LOG_KINDS and low is not None and not low + params.get("offset", 0.0) > 0:
        raise ConfigError(f"clip of {name!r}: {kind} needs clip low + log_offset > 0, got {low} + "
                          f"{params.get('offset', 0.0)}")
    return params


def _check_finite_params(name: str, params: Mapping[str, Any]) -> None:
    """A fit on finite values can still overflow (std of values near 1e308): refuse it here."""
    for key, value in params.items():
        if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
            raise InputError(f"transform of {name!r}: fitted {key} is not finite ({value}); the training values "
                             f"are too large for this transform")


def _to_dtype(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast back to the branch's dtype; generated values outside an integer type's range are clipped."""
    if dtype == np.bool_:
        return x >= 0.5
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(x), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def _check_integers(name: str, x: np.ndarray) -> None:
    if not np.array_equal(x, np.floor(x)):
        raise InputError(f"dequantisation of {name!r}: expected integer values, found e.g. "
                         f"{x[x != np.floor(x)][0]:g}")


def _fit_passthrough(x: np.ndarray) -> dict:
    return {}


def _fit_minmax(x: np.ndarray) -> dict:
    low, high = float(np.min(x)), float(np.max(x))
    return {"low": low, "high": high if high > low else low + 2.0}


def _fit_standard(x: np.ndarray) -> dict:
    std = float(np.std(x))
    return {"mean": float(np.mean(x)), "std": std if std > 0 else 1.0}


def _fit_quantile(x: np.ndarray) -> dict:
    """Knots (x_k, z_k): training quantiles at probabilities p_k and the normal's quantiles z_k.

    Tied quantiles (discrete values) are merged into one knot at the mean z of the tie, so the
    knots are strictly increasing in both coordinates and the map is a bijection.
    """
    n_knots = int(min(N_QUANTILES, max(x.size, 2)))
    probabilities = (np.arange(n_knots) + 0.5) / n_knots
    x_knots = np.quantile(x, probabilities)
    z_knots = ndtri(probabilities)
    unique_x, group = np.unique(x_knots, return_inverse=True)
    unique_z = np.bincount(group, weights=z_knots) / np.bincount(group)
    if unique_x.size == 1:
        unique_x = np.array([unique_x[0], unique_x[0] + 1.0])
        unique_z = np.array([0.0, 1.0])
    return {"x_knots": unique_x, "z_knots": unique_z}


def _piecewise(x: np.ndarray, knots_in: np.ndarray, knots_out: np.ndarray) -> np.ndarray:
    """Piecewise-linear map through the knots, linearly extrapolated with the end slopes."""
    y = np.interp(x, knots_in, knots_out)
    low_slope = (knots_out[1] - knots_out[0]) / (knots_in[1] - knots_in[0])
    high_slope = (knots_out[-1] - knots_out[-2]) / (knots_in[-1] - knots_in[-2])
    below, above = x < knots_in[0], x > knots_in[-1]
    y[below] = knots_out[0] + (x[below] - knots_in[0]) * low_slope
    y[above] = knots_out[-1] + (x[above] - knots_in[-1]) * high_slope
    return y


_FIT = {
    "passthrough": _fit_passthrough,
    "minmax": _fit_minmax,
    "standard": _fit_standard,
    "log_standard": _fit_standard,
    "signed_log_standard": _fit_standard,
    "quantile_normal": _fit_quantile,
    "log10_quantile_normal": _fit_quantile,
}
_FORWARD = {
    "passthrough": lambda x, p: x.copy(),
    "minmax": lambda x, p: 2.0 * (x - p["low"]) / (p["high"] - p["low"]) - 1.0,
    "standard": lambda x, p: (x - p["mean"]) / p["std"],
    "log_standard": lambda x, p: (x - p["mean"]) / p["std"],
    "signed_log_standard": lambda x, p: (x - p["mean"]) / p["std"],
    "quantile_normal": lambda x, p: _piecewise(x, p["x_knots"], p["z_knots"]),
    "log10_quantile_normal": lambda x, p: _piecewise(x, p["x_knots"], p["z_knots"]),
}
_INVERSE = {
    "passthrough": lambda y, p: y.copy(),
    "minmax": lambda y, p: (y + 1.0) * 0.5 * (p["high"] - p["low"]) + p["low"],
    "standard": lambda y, p: y * p["std"] + p["mean"],
    "log_standard": lambda y, p: y * p["std"] + p["mean"],
    "signed_log_standard": lambda y, p: y * p["std"] + p["mean"],
    "quantile_normal": lambda y, p: _piecewise(y, p["z_knots"], p["x_knots"]),
    "log10_quantile_normal": lambda y, p: _piecewise(y, p["z_knots"], p["x_knots"]),
}


# --------------------------------------------------------------------------------------------- decorrelation
@dataclass
class Decorrelation:
    """ZCA whitening y = W (x - mean), W = E diag(1/sqrt(lambda)) E^T of the training covariance.

    ZCA (rather than a PCA rotation) keeps each output close to its own input variable, so the
    columns keep their names' meaning. Directions with (numerically) zero variance are left
    unscaled, so W stays invertible.
    """

    mean: np.ndarray
    matrix: np.ndarray
    inverse_matrix: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Decorrelation":
        mean = x.mean(axis=0)
        covariance = np.atleast_2d(np.cov(x - mean, rowvar=False))
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        tiny = eigenvalues <= 1e-12 * max(float(eigenvalues.max()), 1e-300)
        scale = np.where(tiny, 1.0, np.sqrt(np.where(tiny, 1.0, eigenvalues)))
        matrix = eigenvectors @ np.diag(1.0 / scale) @ eigenvectors.T
        inverse_matrix = eigenvectors @ np.diag(scale) @ eigenvectors.T
        return cls(mean, matrix, inverse_matrix)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.matrix.T

    def inverse(self, y: np.ndarray) -> np.ndarray:
        return y @ self.inverse_matrix.T + self.mean

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "matrix": self.matrix, "inverse_matrix": self.inverse_matrix}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Decorrelation":
        return cls(*(np.asarray(data[key], dtype=np.float64) for key in ("mean", "matrix", "inverse_matrix")))


# --------------------------------------------------------------------------------------------- variable sets
@dataclass
class VariableTransforms:
    """The transforms of an ordered set of variables (a model's conditions or its targets)."""

    transforms: list[VariableTransform]
    decorrelation: Decorrelation | None = None
    seed: int = 0

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.transforms]

    def forward(self, df: pd.DataFrame, seed: int | None = None, dtype=np.float32) -> np.ndarray:
        """DataFrame (physical units, columns ``names``) -> array [n, len(names)] of ``dtype``.

        Dequantisation noise is drawn from a generator seeded by (``seed`` or the fitted seed,
        variable index), so the same rows give the same array.
        """
        _require_columns(df, self.names, "forward")
        seed = self.seed if seed is None else seed
        columns = [t.forward(df[t.name].to_numpy(), np.random.default_rng([seed, i]))
                   for i, t in enumerate(self.transforms)]
        x = np.column_stack(columns) if columns else np.zeros((len(df), 0))
        if self.decorrelation is not None:
            x = self.decorrelation.forward(x)
        return x.astype(dtype)

    def inverse(self, array: np.ndarray) -> pd.DataFrame:
        """Array [n, len(names)] (transformed) -> DataFrame in physical units, dequantisation undone."""
        y = np.asarray(array, dtype=np.float64)
        if y.ndim != 2 or y.shape[1] != len(self.transforms):
            raise InputError(f"inverse transform: expected an array [n, {len(self.transforms)}] "
                             f"for {self.names}, got shape {y.shape}")
        if self.decorrelation is not None:
            y = self.decorrelation.inverse(y)
        return pd.DataFrame({t.name: t.inverse(y[:, i]) for i, t in enumerate(self.transforms)})

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "variables": [t.to_dict() for t in self.transforms],
            "decorrelation": None if self.decorrelation is None else self.decorrelation.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VariableTransforms":
        decorrelation = data.get("decorrelation")
        return cls(
            transforms=[VariableTransform.from_dict(v) for v in data["variables"]],
            decorrelation=None if decorrelation is None else Decorrelation.from_dict(decorrelation),
            seed=int(data.get("seed", 0)),
        )


def fit_variable_transforms(df: pd.DataFrame, kinds: Mapping[str, str], dequantize: Iterable[str] = (),
                            decorrelate: bool = False, seed: int = 0, offsets: Mapping[str, float] | None = None,
                            clips: Mapping[str, tuple] | None = None,
                            point_mass_share: float | None = None, exact_integers: bool = False) -> VariableTransforms:
    """Fit one transform per variable of ``kinds`` (name -> kind, in output order) on ``df``.

    ``df`` must be the training split only. Variables listed in ``dequantize`` must be integers.
    ``offsets`` (log kinds) and ``clips`` ((low, high), either None) apply to the variables they name;
    ``point_mass_share`` (targets) to every variable that is not dequantised; ``exact_integers`` (targets)
    checks that dequantised variables come back exactly (``fit_variable_transform``).
    """
    names = list(kinds)
    _require_columns(df, names, "fit")
    dequantize = set(dequantize)
    offsets, clips = dict(offsets or {}), dict(clips or {})
    transforms = [
        fit_variable_transform(name, df[name].to_numpy(), kinds[name], name in dequantize,
                               np.random.default_rng([seed, i]), offsets.get(name), clips.get(name), point_mass_share,
                               exact_integers)
        for i, name in enumerate(names)
    ]
    result = VariableTransforms(transforms, None, seed)
    if decorrelate and names:
        result.decorrelation = Decorrelation.fit(result.forward(df, dtype=np.float64))
    return result


def _require_columns(df: pd.DataFrame, names: list[str], what: str) -> None:
    missing = [name for name in names if name not in df.columns]
    if missing:
        raise InputError(f"transform {what}: columns {missing} missing; the table has {list(df.columns)}")


# --------------------------------------------------------------------------------------------- support
MAX_DISCRETE_VALUES = 1024


@dataclass
class PhysicalSupport:
    """Where the training split's physical targets live: ``[low, high]`` per column, and for discrete
    (dequantised) columns the values they take.

    A generative model's tails extrapolate beyond the physics (a jetId of 10, 250 constituents, a
    b-tag score of 2.7, a negative energy fraction); the BDT figure of merit spots those at once and
    an analysis would choke on them. Generated rows are therefore clipped to the training range and
    discrete columns snapped to the nearest value seen in training (jetId 5 -> 6 when training saw
    0, 2, 6). A value a detector reports at a range edge (b-tag -1, energy fraction 0) comes back
    exactly. Only generated rows pass through here: ``inverse`` stays exact on any value.

    Stored precision (``mantissa_bits``): NanoAOD keeps most floats with a truncated mantissa (eta 12
    bits, b-tag scores 10, energy fractions 6 to 10), so real values sit on a coarse lattice (175
    distinct chHEF values in 5371 toy jets) while a generator's float32 output does not. An exact
    GradientBoosting BDT isolates the lattice points and tells the samples apart on that alone (jets: AUC
    0.60 against 0.54 for the binned BDT, which cannot see it); FlashSim rounds its output to NanoAOD's
    precision for the same reason. A float32 training column whose mantissas all end in zeros stores
    fewer bits; generated values are rounded to the nearest value with as many bits, as NanoAOD rounds.
    """

    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    mantissa_bits: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, physical: pd.DataFrame, discrete: Iterable[str] = ()) -> "PhysicalSupport":
        """From the training split's physical columns; ``discrete`` columns also keep their values."""
        ranges = {name: (float(physical[name].min()), float(physical[name].max())) for name in physical.columns}
        values = {}
        for name in discrete:
            seen = np.unique(physical[name].to_numpy(np.float64))
            if len(seen) <= MAX_DISCRETE_VALUES:
                values[name] = seen
        bits = {name: stored_mantissa_bits(physical[name].to_numpy()) for name in physical.columns if name not in values}
        return cls(ranges, values, {name: n for name, n in bits.items() if n is not None})

    def apply(self, physical: pd.DataFrame) -> pd.DataFrame:
        """Generated physical rows -> the same rows inside the training support (a copy)."""
        out = physical.copy()
        for name, (low, high) in self.ranges.items():
            if name in out.columns:
                column = np.clip(out[name].to_numpy(np.float64), low, high)
                if name in self.values:
                    column = nearest_value(column, self.values[name])
                if name in self.mantissa_bits:
                    column = round_mantissa(column, self.mantissa_bits[name])
                out[name] = column
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ranges": {name: list(bounds) for name, bounds in self.ranges.items()},
                "values": {name: seen for name, seen in self.values.items()},
                "mantissa_bits": dict(self.mantissa_bits)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "PhysicalSupport":
        data = data or {}
        return cls({name: (float(low), float(high)) for name, (low, high) in data.get("ranges", {}).items()},
                   {name: np.asarray(seen, dtype=np.float64) for name, seen in data.get("values", {}).items()},
                   {name: int(bits) for name, bits in data.get("mantissa_bits", {}).items()})


#: float32 mantissa bits, and the rows a column needs before its trailing zeros say something: n rows of
#: full precision all ending in k zero bits by chance has probability 2^-(n k), nil at 100 rows.
FLOAT32_MANTISSA_BITS, MIN_ROWS_FOR_PRECISION = 23, 100


def stored_mantissa_bits(values: np.ndarray) -> int | None:
    """Mantissa bits a float32 column actually uses (None: full precision, not float32, or too few rows)."""
    values = np.asarray(values)
    if values.dtype != np.float32 or len(values) < MIN_ROWS_FOR_PRECISION:
        return None
    used = int(np.bitwise_or.reduce(values.view(np.uint32) & np.uint32(0x7FFFFF)))
    if used == 0:
        return 0
    trailing_zeros = (used & -used).bit_length() - 1
    return FLOAT32_MANTISSA_BITS - trailing_zeros if trailing_zeros > 0 else None


def round_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """float32 values rounded to the nearest value with ``bits`` mantissa bits (ties away from zero, as
    NanoAOD's MiniFloatConverter rounds); a carry into the exponent is the correct next value."""
    shift = FLOAT32_MANTISSA_BITS - int(bits)
    as_int = np.asarray(values, dtype=np.float32).view(np.uint32)
    rounded = (as_int + np.uint32(1 << (shift - 1))) & np.uint32((0xFFFFFFFF << shift) & 0xFFFFFFFF)
    return rounded.view(np.float32).astype(np.float64)


def nearest_value(x: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Each entry of ``x`` replaced by the nearest entry of the sorted ``allowed`` (ties go down)."""
    above = np.clip(np.searchsorted(allowed, x), 1, max(len(allowed) - 1, 1))
    below = above - 1
    if len(allowed) == 1:
        return np.full_like(x, allowed[0], dtype=np.float64)
    take_above = np.abs(allowed[above] - x) < np.abs(x - allowed[below])
    return np.where(take_above, allowed[above], allowed[below])


# --------------------------------------------------------------------------------------------- one model
@dataclass
class ModelTransforms:
    """Everything needed to go from physical rows to model inputs and back, for one model.

    ``targets`` act on the *model-space* targets: derived variables (``ptRatio``) computed and,
    for covariance targets, the 15 elements replaced slot by slot by ``target_representation``.
    """

    conditions: VariableTransforms
    targets: VariableTransforms
    derived: dict[str, DerivedVariable] = field(default_factory=dict)
    target_representation: str = "elements"
    model: str = ""
    support: PhysicalSupport = field(default_factory=PhysicalSupport)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def condition_names(self) -> list[str]:
        return self.conditions.names

    @property
    def target_names(self) -> list[str]:
        return self.targets.names

    def physical_to_targets(self, df: pd.DataFrame) -> pd.DataFrame:
        """Physical rows -> model-space targets (derived computed, covariance representation applied)."""
        return model_space_targets(df, self.target_names, self.derived, self.target_representation)

    def targets_to_physical(self, targets_df: pd.DataFrame, conditions_df: pd.DataFrame) -> pd.DataFrame:
        """Model-space targets (``targets.inverse`` output) -> physical columns.

        Undoes the covariance representation (back to the 15 elements) and each derived variable
        (ratio: a = r * b; difference: a = d + b; delta_phi: a = wrap(d + b) into (-pi, pi]),
        reading ``b`` from ``conditions_df`` (physical units). A derived column is replaced by the
        variable it was derived from (``ptRatio`` -> ``pt``); other columns keep their names.
        """
        targets = targets_df.reset_index(drop=True)
        if self.target_representation != "elements":
            values = cov_repr.from_representation(targets[self.target_names].to_numpy(np.float64),
                                                  self.target_representation)
            targets = pd.DataFrame(values, columns=self.target_names)
        conditions = conditions_df.reset_index(drop=True)
        columns = {}
        for name in self.target_names:
            if name in self.derived:
                spec = self.derived[name]
                columns[spec.source] = invert_derived(spec, targets[name].to_numpy(),
                                                      _column(conditions, spec.reference, "targets_to_physical"))
            else:
                columns[name] = targets[name].to_numpy()
        return pd.DataFrame(columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "conditions": self.conditions.to_dict(),
            "targets": self.targets.to_dict(),
            "derived": {name: spec.to_dict() for name, spec in self.derived.items()},
            "target_representation": self.target_representation,
            "support": self.support.to_dict(),
            "report": self.report,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelTransforms":
        return cls(
            conditions=VariableTransforms.from_dict(data["conditions"]),
            targets=VariableTransforms.from_dict(data["targets"]),
            derived={name: DerivedVariable.from_dict(name, spec) for name, spec in data.get("derived", {}).items()},
            target_representation=data.get("target_representation", "elements"),
            model=data.get("model", ""),
            support=PhysicalSupport.from_dict(data.get("support")),
            report=dict(data.get("report") or {}),
        )


def model_space_targets(df: pd.DataFrame, target_names: list[str], derived: Mapping[str, DerivedVariable],
                        representation: str = "elements") -> pd.DataFrame:
    """Physical rows -> the targets a model learns (before the fitted transforms), float64.

    Derived targets are computed from their physical columns; with a covariance representation
    other than ``elements`` the 15 ``cov_ij`` columns (row-major upper triangle, config order) are
    replaced slot by slot by the representation's values.
    """
    columns = {}
    for name in target_names:
        columns[name] = (compute_derived(derived[name], df) if name in derived
                         else _column(df, name, "physical_to_targets").astype(np.float64))
    targets = pd.DataFrame(columns, index=df.index)
    if representation != "elements":
        values = cov_repr.to_representation(targets[target_names].to_numpy(np.float64), representation)
        targets = pd.DataFrame(values, columns=target_names, index=df.index)
    return targets


def _column(df: pd.DataFrame, name: str, what: str) -> np.ndarray:
    if name not in df.columns:
        raise InputError(f"{what}: column {name!r} missing; the table has {list(df.columns)}")
    return df[name].to_numpy()


# --------------------------------------------------------------------------------------------- storage
def save_transforms(model_transforms: ModelTransforms, path_json: str | Path) -> None:
    """Write ``transforms.json`` (small values) and ``transforms.npz`` beside it (arrays), atomically.

    Arrays are replaced in the JSON by ``{"npz": "<key>"}`` references; nothing is pickled, and the
    npz is read back with ``allow_pickle=False``. A non-finite number anywhere (a mean of -inf) is
    refused before anything is written: JSON has no inf, and Python would write ``-Infinity``.
    """
    path_json = Path(path_json)
    path_npz = path_json.with_suffix(".npz")
    arrays: dict[str, np.ndarray] = {}
    document = _extract_arrays(model_transforms.to_dict(), "", arrays)
    document["arrays_file"] = path_npz.name
    _check_finite_document(document, arrays, path_json)
    text = json.dumps(document, indent=1, allow_nan=False) + "\n"
    with atomic_path(path_npz) as tmp:
        with open(tmp, "wb") as stream:
            np.savez(stream, **arrays)
    write_text_atomic(path_json, text)


def _check_finite_document(document: Any, arrays: Mapping[str, np.ndarray], path_json: Path) -> None:
    """InputError naming the first key (``targets/variables/3/params/mean``) holding NaN or +-inf."""
    bad = _first_non_finite(document, "")
    bad = bad or next((k for k, a in arrays.items()
                       if np.issubdtype(a.dtype, np.number) and not np.all(np.isfinite(a))), None)
    if bad is not None:
        raise InputError(f"{path_json}: refusing to write non-finite transform parameter {bad!r} "
                         f"(NaN or +-inf); a model input is not finite")


def _first_non_finite(value: Any, key: str) -> str | None:
    if isinstance(value, float) and not np.isfinite(value):
        return key
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _first_non_finite(v, f"{key}/{k}" if key else str(k))
        if found is not None:
            return found
    return None


def load_transforms(path_json: str | Path) -> ModelTransforms:
    """Load what ``save_transforms`` wrote (the loader generation and export use)."""
    path_json = Path(path_json)
    try:
        document = json.loads(path_json.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path_json}: cannot read the transforms JSON ({error})") from error
    path_npz = path_json.with_name(document.get("arrays_file", path_json.with_suffix(".npz").name))
    try:
        with np.load(path_npz, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except OSError as error:
        raise InputError(f"{path_npz}: cannot read the transforms arrays beside {path_json} ({error})") from error
    return ModelTransforms.from_dict(_insert_arrays(document, arrays, path_npz))


def _extract_arrays(value: Any, key: str, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        arrays[key] = value
        return {"npz": key}
    if isinstance(value, dict):
        return {k: _extract_arrays(v, f"{key}/{k}" if key else str(k), arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_extract_arrays(v, f"{key}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _insert_arrays(value: Any, arrays: Mapping[str, np.ndarray], path_npz: Path) -> Any:
    if isinstance(value, dict):
        if set(value) == {"npz"}:
            if value["npz"] not in arrays:
                raise InputError(f"{path_npz}: array {value['npz']!r} missing")
            return arrays[value["npz"]]
        return {k: _insert_arrays(v, arrays, path_npz) for k, v in value.items()}
    if isinstance(value, list):
        return [_insert_arrays(v, arrays, path_npz) for v in value]
    return value
