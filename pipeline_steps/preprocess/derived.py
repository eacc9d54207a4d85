"""Derived targets (FlashSim style): responses and residuals of a reco variable w.r.t. its gen partner.

Config ``models.<m>.derived.<name> = {op, of: [a, b]}`` defines ``name`` from the physical columns
``a`` (reco, e.g. ``pt``) and ``b`` (reference, e.g. ``gen_pt``, a condition):

- ``ratio``: r = a / b, inverse a = r * b (b must be non-zero); with ``floor`` (a positive number
  in b's units): r = a / max(b, floor), inverse a = r * max(b, floor). The inverse stays exact for
  every row (b is a known condition), and a GenJet mass of 0 or -2.6e-7 (float noise in real NanoAOD)
  no longer turns mass/gen_mass into +-inf or -1e7. How many rows were below the floor is reported
  (``floored_rows``, ``transforms.json`` ``report``);
- ``difference``: d = a - b, inverse a = d + b;
- ``delta_phi``: d = wrap(a - b), inverse a = wrap(d + b), wrap into (-pi, pi] (radians).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from pipeline_steps.common.errors import ConfigError, InputError

if TYPE_CHECKING:  # planning parses `derived` (workflow_config.py) and must not import pandas (~0.4-0.9 s)
    import pandas as pd

DERIVED_OPS = ("ratio", "difference", "delta_phi")


@dataclass(frozen=True)
class DerivedVariable:
    """``name`` = op(``source``, ``reference``); ``floor`` bounds a ratio's denominator from below."""

    name: str
    op: str
    source: str
    reference: str
    floor: float | None = None

    def to_dict(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"op": self.op, "of": [self.source, self.reference]}
        if self.floor is not None:
            spec["floor"] = self.floor
        return spec

    def denominator(self, reference: np.ndarray) -> np.ndarray:
        """The ratio's denominator: the reference, raised to ``floor`` where it is below."""
        b = np.asarray(reference, dtype=np.float64)
        return b if self.floor is None else np.maximum(b, self.floor)

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any]) -> "DerivedVariable":
        if spec.get("op") not in DERIVED_OPS:
            raise ConfigError(f"derived.{name}.op: expected one of {list(DERIVED_OPS)}, got {spec.get('op')!r}")
        of = list(spec.get("of", []))
        if len(of) != 2:
            raise ConfigError(f"derived.{name}.of: expected two column names [a, b], got {of!r}")
        floor = spec.get("floor")
        if floor is not None:
            if spec["op"] != "ratio":
                raise ConfigError(f"derived.{name}.floor: only a ratio has a denominator to floor, op is {spec['op']!r}")
            if not (isinstance(floor, (int, float)) and np.isfinite(floor) and floor > 0):
                raise ConfigError(f"derived.{name}.floor: expected a positive number (units of {of[1]!r}), got {floor!r}")
            floor = float(floor)
        return cls(name=name, op=spec["op"], source=of[0], reference=of[1], floor=floor)


def parse_derived(config_slice: Mapping[str, Mapping[str, Any]] | None) -> dict[str, DerivedVariable]:
    """The config's ``derived`` mapping as typed objects, in config order."""
    return {name: DerivedVariable.from_dict(name, spec) for name, spec in (config_slice or {}).items()}


def wrap_phi(angle: np.ndarray) -> np.ndarray:
    """Wrap radians into (-pi, pi] (pi stays pi, -pi becomes pi)."""
    angle = np.asarray(angle, dtype=np.float64)
    return np.pi - np.mod(np.pi - angle, 2.0 * np.pi)


def compute_derived(spec: DerivedVariable, df: pd.DataFrame) -> np.ndarray:
    """The derived column from the physical columns of ``df`` (float64)."""
    for column in (spec.source, spec.reference):
        if column not in df.columns:
            raise InputError(f"derived {spec.name!r} ({spec.op} of {spec.source}, {spec.reference}): "
                             f"column {column!r} missing; the table has {list(df.columns)}")
    a = df[spec.source].to_numpy(np.float64)
    b = df[spec.reference].to_numpy(np.float64)
    if spec.op == "ratio":
        denominator = spec.denominator(b)
        if np.any(denominator == 0):
            raise InputError(f"derived {spec.name!r} = {spec.source} / {spec.reference}: "
                             f"{int(np.sum(denominator == 0))} rows have {spec.reference} == 0; "
                             f"set derived.{spec.name}.floor (a positive {spec.reference} in its units)")
        return a / denominator
    if spec.op == "difference":
        return a - b
    return wrap_phi(a - b)


def floored_rows(spec: DerivedVariable, df: pd.DataFrame) -> int:
    """How many rows of ``df`` have the ratio's reference below its floor (0 without a floor)."""
    if spec.floor is None:
        return 0
    return int(np.sum(df[spec.reference].to_numpy(np.float64) < spec.floor))


def invert_derived(spec: DerivedVariable, values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``spec.source`` back from the derived values and the reference column (float64)."""
    d = np.asarray(values, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if spec.op == "ratio":
        return d * spec.denominator(b)
    if spec.op == "difference":
        return d + b
    return wrap_phi(d + b)
