"""Where generated physical rows may live: the training split's range, discrete values and stored precision.

Generation passes every generated row through ``PhysicalSupport.apply`` after the exact inverse
transforms; real rows never go through it, so the inverse stays exact on any value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from pipeline_steps.common.errors import ConfigError


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

    Bounded sums (``preprocessing.bounded_sums``): parts of one whole, such as a jet's energy fractions
    (chHEF + neHEF + chEmEF + neEmEF + muEF), are each held to their own range by the clip, but a flow
    draws them as separate targets and their sum is free: 14 % of the default toy's generated jets summed
    above 1 (up to 1.22), where no real jet does. A group's bound is the training split's largest row sum;
    a generated row above it has the group's parts scaled down together, keeping their ratios (``_held_sums``).
    """

    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    mantissa_bits: dict[str, int] = field(default_factory=dict)
    sums: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    @classmethod
    def fit(cls, physical: pd.DataFrame, discrete: Iterable[str] = (),
            bounded_sums: Iterable[Iterable[str]] = ()) -> "PhysicalSupport":
        """From the training split's physical columns; ``discrete`` columns also keep their values;
        each group of ``bounded_sums`` keeps its largest row sum (``check_bounded_sum`` says what a group
        may hold)."""
        ranges = {name: (float(physical[name].min()), float(physical[name].max())) for name in physical.columns}
        values = {}
        for name in discrete:
            seen = np.unique(physical[name].to_numpy(np.float64))
            if len(seen) <= MAX_DISCRETE_VALUES:
                values[name] = seen
        bits = {name: stored_mantissa_bits(physical[name].to_numpy()) for name in physical.columns if name not in values}
        sums = []
        for group in bounded_sums:
            group = tuple(group)
            check_bounded_sum(group, ranges)
            sums.append((group, float(physical[list(group)].to_numpy(np.float64).sum(axis=1).max())))
        return cls(ranges, values, {name: n for name, n in bits.items() if n is not None}, sums)

    def apply(self, physical: pd.DataFrame) -> pd.DataFrame:
        """Generated physical rows -> the same rows inside the training support (a copy)."""
        out = physical.copy()
        clipped = {name: np.clip(out[name].to_numpy(np.float64), low, high)
                   for name, (low, high) in self.ranges.items() if name in out.columns}
        for group, bound in self.sums:
            held = _held_sums([clipped[name] for name in group], bound,
                              min(self.mantissa_bits.get(name, FLOAT32_MANTISSA_BITS) for name in group))
            clipped.update(zip(group, held))
        for name, column in clipped.items():
            if name in self.values:
                column = nearest_value(column, self.values[name])
            if name in self.mantissa_bits:
                column = round_mantissa(column, self.mantissa_bits[name])
            out[name] = column
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ranges": {name: list(bounds) for name, bounds in self.ranges.items()},
                "values": {name: seen for name, seen in self.values.items()},
                "mantissa_bits": dict(self.mantissa_bits),
                "sums": [{"columns": list(group), "high": bound} for group, bound in self.sums]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "PhysicalSupport":
        data = data or {}
        return cls({name: (float(low), float(high)) for name, (low, high) in data.get("ranges", {}).items()},
                   {name: np.asarray(seen, dtype=np.float64) for name, seen in data.get("values", {}).items()},
                   {name: int(bits) for name, bits in data.get("mantissa_bits", {}).items()},
                   [(tuple(entry["columns"]), float(entry["high"])) for entry in data.get("sums", [])])


def check_bounded_sum(group: tuple[str, ...], ranges: Mapping[str, tuple[float, float]]) -> None:
    """A bounded sum's parts are non-negative in the training split: scaling a row's parts down lowers its
    sum only then. What the config alone decides (names, discrete parts) planning has checked
    (``model_variables.check_bounded_sums``)."""
    negative = {name: ranges[name][0] for name in group if ranges[name][0] < 0}
    if negative:
        raise ConfigError(f"preprocessing.bounded_sums {list(group)}: {sorted(negative)} take negative values in "
                          f"the training split (minimum {min(negative.values()):g}); a bounded sum holds non-negative "
                          f"parts (fractions)")


def _held_sums(parts: list[np.ndarray], bound: float, bits: int) -> list[np.ndarray]:
    """The parts of every row whose sum passes the target ``bound / ((1 + 2^-(bits+1)) (1 + 2^-24))`` scaled
    down together to it.

    The stored precision rounds each part to nearest, by at most 2^-(bits+1) of its value, after the cast to
    float32 has rounded it by up to 2^-24 (a float32 file column is cast once more, exactly then), so a sum
    scaled to exactly ``bound`` could come back above it (by up to 0.8 % with NanoAOD's 6-bit fractions);
    scaled to the target it cannot. Without the float32 factor, 3587 of 10^6 rows of 22-bit parts had
    ended above the bound by up to 4e-8 (review probe). The rows between the target and the bound are
    scaled too, by less than that rounding. Non-negative parts (``check_bounded_sum``) keep their ratios (a part whose training minimum
    is above 0 may end below it)."""
    target = bound / ((1.0 + 2.0 ** -(bits + 1)) * (1.0 + 2.0 ** -24))
    total = np.sum(parts, axis=0)
    scale = np.where(total > target, target / np.where(total > 0, total, 1.0), 1.0)
    return [part * scale for part in parts]


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
