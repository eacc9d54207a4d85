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

A model's two variable sets, with its derived targets and physical support, make its
``model_transforms.ModelTransforms`` (stored as ``transforms.json`` + ``.npz``).

"Exact" means to floating-point rounding, and where: through float64 a value comes back to ~1e-15 of
its column's scale (the tests allow 1e-6 relative, the final cast to a float32 branch included); through
the float32 model space a continuous value moves by float32's rounding of its model value, 2^-24 |y|
|dx/dy|, at most 1e-5 of the column's scale in the tests. So a value far below its column's scale keeps
no relative precision (1e-8 among momenta up to 1e8), -0.0 comes back as 0.0 and a denormal as 0, and a
float32 maximum under a log kind can come back as inf. Integers (dequantised) and point-mass edge values
come back exactly, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.special import ndtri

from pipeline_steps.common.errors import ConfigError, InputError
from pipeline_steps.preprocess.decorrelation import Decorrelation
from pipeline_steps.preprocess.model_variables import LOG_KINDS

__all__ = [
    "TRANSFORM_KINDS",
    "LOG_KINDS",
    "DEQUANTIZE_MARGIN",
    "VariableTransform",
    "VariableTransforms",
    "fit_variable_transform",
    "fit_variable_transforms",
    "invalid_values",
    "spikes_short_of_an_edge",
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
        if data["kind"] not in TRANSFORM_KINDS:
            raise ValueError(f"variable {data.get('name')!r}: transform kind {data['kind']!r} is not one of "
                             f"{list(TRANSFORM_KINDS)}")
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
                         f"{transform.kind!r} ({example}): float32 keeps too few digits where the transform is "
                         f"this flat (large values, or a quantile map across wide gaps between few values); give "
                         f"{transform.name!r} another transform in preprocessing.per_variable (e.g. 'standard'), "
                         f"or remove {transform.name!r} from preprocessing.dequantize")


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


def _constant_span(value: float) -> float:
    """A width to give a column that is constant in training: its own size, at least 1, so that a later
    value a few per cent off stays near the training one in model space, and adding the width is never
    lost (|value| >= 2**53: a constant 1e17 had got low == high, and NaN from every forward)."""
    return max(1.0, abs(value))


def _fit_minmax(x: np.ndarray) -> dict:
    low, high = float(np.min(x)), float(np.max(x))
    return {"low": low, "high": high if high > low else low + 2.0 * _constant_span(low)}


def _fit_standard(x: np.ndarray) -> dict:
    """Mean and std; a column constant in training maps to 0, with the constant's own size as its width.
    Tested by equality, not by std > 0: np.std of equal values is rounding noise (6500 repeated: 1.8e-15),
    which had sent a test row of 6800 to 1.3e13 in model space and the training rows to -1."""
    if x.size and np.min(x) == np.max(x):
        return {"mean": float(x.flat[0]), "std": _constant_span(float(x.flat[0]))}
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
    if unique_x.size == 1:  # every knot on one value: the column's own range if it has one (a few rows off a
        spread = float(np.max(x) - np.min(x))  # spike), else the constant's size
        unique_x = np.array([unique_x[0], unique_x[0] + (spread if spread > 0 else _constant_span(float(unique_x[0])))])
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
